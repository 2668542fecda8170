"""IAI per-frame inference post-processing (Sec. 3.2 "Post Processing for Inference"; §3 notes).

One detection per location (class-agnostic: each detection is a unique instance):
  1. keep locations whose best class probability > 0.1 and best ID probability > 0.1;
  2. rank by ``(a cls + b id) * centerness`` with (a, b) = (1, 0.5) on the video's first frame (no
     memory, ID scores carry little) and (0.5, 1) afterwards;
  3. class-agnostic box NMS at IoU 0.5, keep the 10 best;
  4. paint the masks in rank order: each takes only pixels no better detection holds, and a mask
     that loses more than 90 % of its area that way (or is empty) is dropped.
The Hungarian ID assignment is the tracker's job (``tubelet.trackers.iai_assign``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import nms

from tubelet.structures.tensor_record import TensorRecord


@dataclass
class IAIDetections(TensorRecord):
    """Detections of one frame (K detections, C classes, N ID slots), best first.

    Attributes:
        boxes: ``[K, 4]`` (x1, y1, x2, y2) pixels in the output frame.
        scores: ``[K]`` the ranking score ``(a cls + b id) * centerness``.
        labels: ``[K]`` long, the most probable class.
        class_probs: ``[K, C]`` sigmoid class probabilities.
        id_probs: ``[K, N]`` sigmoid ID probabilities (column N-1 = "new").
        centerness: ``[K]`` predicted centerness.
        masks: ``[K, H, W]`` bool in the output frame, disjoint (painted in rank order).
        locations: ``[K, 2]`` (x, y) in the network input frame; levels: ``[K]`` pyramid level.
    """
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_probs: Tensor
    id_probs: Tensor
    centerness: Tensor
    masks: Tensor
    locations: Tensor
    levels: Tensor



def select_iai_candidates(cls_logits: Tensor, id_logits: Tensor, ctr_logits: Tensor,
                          ltrb: Tensor, locations: Tensor, image_size: tuple[int, int],
                          weights: tuple[float, float], cls_thr: float = 0.1,
                          id_thr: float = 0.1, pre_nms_topk: int = 1000,
                          nms_thr: float = 0.5,
                          max_detections: int = 10) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1-3 for one image.

    Args:
        cls_logits: ``[L, C]``; id_logits: ``[L, N]``; ctr_logits: ``[L]``; ltrb: ``[L, 4]``
            pixels; locations: ``[L, 2]`` (x, y).
        image_size: valid (h, w); boxes are clipped to it.
        weights: (a, b) of the ranking score.
        pre_nms_topk: candidates kept (by score) before NMS.

    Returns:
        ``(loc_index [K], scores [K], boxes [K, 4])`` sorted by decreasing score.
    """
    cls = torch.sigmoid(cls_logits).max(dim=1).values  # [L]
    ids = torch.sigmoid(id_logits).max(dim=1).values  # [L]
    ctr = torch.sigmoid(ctr_logits)
    loc = torch.nonzero((cls > cls_thr) & (ids > id_thr)).flatten()
    a, b = weights
    score = (a * cls[loc] + b * ids[loc]) * ctr[loc]
    if score.numel() > pre_nms_topk:
        score, top = score.topk(pre_nms_topk)
        loc = loc[top]
    xy, d = locations[loc], ltrb[loc]
    h, w = image_size
    boxes = torch.stack([(xy[:, 0] - d[:, 0]).clamp(0, w), (xy[:, 1] - d[:, 1]).clamp(0, h),
                         (xy[:, 0] + d[:, 2]).clamp(0, w), (xy[:, 1] + d[:, 3]).clamp(0, h)],
                        dim=1)  # [n, 4]
    keep = nms(boxes.float(), score.float(), nms_thr)[:max_detections]  # sorted by score
    return loc[keep], score[keep], boxes[keep]


def paint_masks(masks: Tensor, max_lost: float = 0.9) -> tuple[Tensor, Tensor]:
    """Step 4: make masks disjoint in rank order.

    Args:
        masks: ``[K, H, W]`` bool, best first.
        max_lost: drop a mask that loses more than this fraction of its area to better ones.

    Returns:
        ``(painted [K', H, W] bool, keep [K] bool)``: the kept masks with only their own pixels.
    """
    taken = torch.zeros(masks.shape[-2:], dtype=torch.bool, device=masks.device)
    keep = torch.zeros(masks.shape[0], dtype=torch.bool, device=masks.device)
    painted = []
    for k, m in enumerate(masks):
        area = int(torch.count_nonzero(m))  # (2x faster than a bool sum on a CPU)
        own = m & ~taken
        if area == 0 or area - int(torch.count_nonzero(own)) > max_lost * area:
            continue
        keep[k] = True
        taken |= own
        painted.append(own)
    if not painted:
        return masks.new_zeros(0, *masks.shape[-2:]), keep
    return torch.stack(painted), keep
