"""CondInst / FCOS inference: candidate selection, NMS, mask pasting.

Per image: per level, keep (location, class) pairs whose class probability > ``score_thr``
(0.05), rank them by ``probability * centerness`` and keep the ``pre_nms_topk`` (1000) best; over
all levels run class-aware box NMS (IoU 0.6, ``torchvision.ops.batched_nms``) and keep the
``max_detections`` (100) best. A location may give several detections of different classes.
The detection score is ``probability * centerness`` (FCOS paper).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from tubelet.ops.paste import column_major_masks, is_power_of_two, paste_thresholded
from tubelet.structures.instances import FrameInstances
from tubelet.structures.tensor_record import TensorRecord


@dataclass
class Detections(TensorRecord):
    """Detections of one image (N detections, C classes, F feature width).

    Attributes:
        boxes: ``[N, 4]`` (x1, y1, x2, y2) pixels in the output frame.
        scores: ``[N]`` class probability x centerness.
        labels: ``[N]`` long 0-based class index.
        class_probs: ``[N, C]`` sigmoid class probabilities at the detection's location.
        masks: ``[N, H, W]`` bool (or float probabilities when asked) in the output frame.
        features: ``[N, F]`` classification-tower feature at the location (embedding input).
        centerness: ``[N]`` predicted centerness.
        locations: ``[N, 2]`` (x, y) of the location in the network input frame.
        levels: ``[N]`` long pyramid level index (0 = the finest head level).
    """
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_probs: Tensor
    masks: Tensor
    features: Tensor
    centerness: Tensor
    locations: Tensor
    levels: Tensor


    def to_frame_instances(self, category_ids: Sequence[int] | None = None,
                           embeddings: Tensor | None = None):
        """A :class:`tubelet.structures.FrameInstances` (numpy); labels mapped through
        ``category_ids`` (column c -> dataset id) when given; ``embeddings`` ``[N, D]`` optional."""
        labels = self.labels.cpu().numpy()
        if category_ids is not None:
            labels = np.asarray(category_ids, dtype=np.int64)[labels]
        masks = self.masks if self.masks.dtype == torch.bool else self.masks > 0.5
        return FrameInstances(
            masks=masks.cpu().numpy(), scores=self.scores.detach().cpu().numpy(), labels=labels,
            class_probs=self.class_probs.detach().cpu().numpy(),
            embeddings=None if embeddings is None else embeddings.detach().cpu().numpy(),
            boxes=self.boxes.detach().cpu().numpy())


@dataclass
class Candidates(TensorRecord):
    """Detections before masks: indices into the flattened locations of one image.

    Attributes: loc_index ``[N]`` long, labels ``[N]``, scores ``[N]``, boxes ``[N, 4]`` (input frame).
    """
    loc_index: Tensor
    labels: Tensor
    scores: Tensor
    boxes: Tensor


def select_candidates(cls_logits: Tensor, ctr_logits: Tensor, ltrb: Tensor, locations: Tensor,
                      level_slices: Sequence[slice], image_size: tuple[int, int],
                      score_thr: float = 0.05, pre_nms_topk: int = 1000,
                      nms_thr: float = 0.6, max_detections: int = 100) -> Candidates:
    """FCOS candidate selection + NMS for one image.

    Args:
        cls_logits: ``[L, C]``; ctr_logits: ``[L]``; ltrb: ``[L, 4]`` pixels; locations: ``[L, 2]``.
        level_slices: the slice of each level in the L axis.
        image_size: (h, w) of the valid (unpadded) image; boxes are clipped to it.

    Returns:
        :class:`Candidates` sorted by decreasing score, at most ``max_detections``.
    """
    probs = torch.sigmoid(cls_logits)
    ctr = torch.sigmoid(ctr_logits)
    loc_all, lab_all, score_all = [], [], []
    for sl in level_slices:
        p = probs[sl]  # [L_l, C]
        loc, lab = torch.nonzero(p > score_thr, as_tuple=True)
        score = p[loc, lab] * ctr[sl][loc]
        if score.numel() > pre_nms_topk:
            score, top = score.topk(pre_nms_topk)
            loc, lab = loc[top], lab[top]
        loc_all.append(loc + sl.start)
        lab_all.append(lab)
        score_all.append(score)
    loc = torch.cat(loc_all)
    lab = torch.cat(lab_all)
    score = torch.cat(score_all)
    xy, d = locations[loc], ltrb[loc]
    boxes = torch.stack([xy[:, 0] - d[:, 0], xy[:, 1] - d[:, 1], xy[:, 0] + d[:, 2],
                         xy[:, 1] + d[:, 3]], dim=1)
    h, w = image_size
    boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                         boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)
    keep = batched_nms(boxes.float(), score.float(), lab, nms_thr)[:max_detections]
    return Candidates(loc[keep], lab[keep], score[keep], boxes[keep])


def paste_masks(logits: Tensor, stride: int, image_size: tuple[int, int],
                output_size: tuple[int, int] | None = None, threshold: float | None = 0.5,
                chunk: int = 16) -> Tensor:
    """Mask logits at ``stride`` -> masks in the output frame.

    Upsampled by ``stride`` (bilinear, align_corners=False keeps pixel centres aligned), cropped to
    the valid ``image_size`` (h, w), resized to ``output_size`` (H, W) if given, then thresholded.
    Done in chunks of instances so 100 full-resolution float masks never coexist.

    Args:
        logits: ``[N, 1, H_m, W_m]``.

    Returns:
        ``[N, H, W]`` bool (``threshold`` set; stored column-major per mask, i.e. the transpose
        of a contiguous ``[N, W, H]``) or float probabilities (``threshold=None``).
    """
    h, w = image_size
    out_h, out_w = output_size if output_size is not None else image_size
    n = logits.shape[0]
    if threshold is not None:
        out = column_major_masks(n, out_h, out_w, logits.device)
    else:
        out = torch.zeros(n, out_h, out_w, dtype=torch.float32, device=logits.device)
    if threshold is not None and (out_h, out_w) == (h, w) and is_power_of_two(stride):
        # exact, upsampling each mask only where it can be on (ops.paste)
        paste_thresholded(torch.sigmoid(logits[:, 0].float()), stride, h, w, threshold, out)
        return out
    for i in range(0, n, chunk):
        x = torch.sigmoid(logits[i:i + chunk].float())
        x = F.interpolate(x, scale_factor=stride, mode="bilinear", align_corners=False)
        x = x[:, :, :h, :w]
        if (out_h, out_w) != (h, w):
            x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)
        x = x[:, 0]
        out[i:i + chunk] = x > threshold if threshold is not None else x
    return out


def scale_boxes(boxes: Tensor, image_size: tuple[int, int], output_size: tuple[int, int]) -> Tensor:
    """``[N, 4]`` boxes from the (h, w) input frame to the (H, W) output frame."""
    sy, sx = output_size[0] / image_size[0], output_size[1] / image_size[1]
    return boxes * boxes.new_tensor([sx, sy, sx, sy])
