"""Per-frame inference of ``contrastive-online``: Q decoder queries -> :class:`FrameInstances`.

The released code's per-frame rule (REFERENCE_NOTES §4, "Inference")::

    score_q = max_c p[q, c]                     (sigmoid class probabilities, no "no object")
    keep    = {q : score_q > score_thr}         (score_thr = 0.1); the top-1 query if empty
    masks   = dynamic-head logits at stride 4 -> x4 bilinear -> crop to the input (h, w)
              -> bilinear to the frame (H, W) -> sigmoid > mask_thr
    boxes   = (cx, cy, w, h) normalised to the input -> (x1, y1, x2, y2) frame pixels

Box NMS 0.9 / mask NMS 0.5 are *not* here: the memory-bank tracker runs them itself
(:meth:`MemoryBankTracker.prefilter`); for the ablation trackers the method calls that same
method (:func:`ablation_prefilter`), so every tracker sees the same detections.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tubelet.ops.mask_iou import mask_iou_rle
from tubelet.ops.paste import column_major_masks, paste_thresholded
from tubelet.structures import FrameInstances, encode_many
from tubelet.trackers import MemoryBankTracker, MemoryConfig

# query indices [K] -> mask logits [K, h_m, w_m] at stride 4 of the input
MaskFn = Callable[[Tensor], Tensor]


def select_queries(prob: Tensor, score_thr: float) -> Tensor:
    """Queries kept for the tracker.

    Args:
        prob: ``[Q, C]`` sigmoid class probabilities.
        score_thr: keep queries whose max probability is strictly greater.

    Returns:
        ``[K]`` long, in descending score order (stable on ties: lower index first); the single
        best query when none passes (K = 1), empty only when Q = 0.
    """
    if prob.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=prob.device)
    scores = prob.max(1).values  # [Q]
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = order[scores[order] > score_thr]
    return keep if keep.numel() else order[:1]


def masks_to_frame(mask_logits: Tensor, input_size: tuple[int, int],
                   out_size: tuple[int, int], mask_thr: float) -> Tensor:
    """Stride-4 logits ``[K, h_m, w_m]`` -> bool masks ``[K, H, W]`` at the frame's size.

    ``h_m = ceil(h / 4)``: the x4 map covers at least the input and is cropped to (h, w) before
    the resize, so padding never stretches into the frame.
    """
    k, hm, wm = mask_logits.shape
    h, w = input_size
    if k == 0:
        return torch.zeros((0, *out_size), dtype=torch.bool, device=mask_logits.device)
    if tuple(out_size) == (h, w):  # no resize: the same masks, upsampled where they can be on
        out = column_major_masks(k, h, w, mask_logits.device)
        paste_thresholded(mask_logits.float(), 4, h, w, mask_thr, out, post=torch.sigmoid)
        return out
    x = F.interpolate(mask_logits[:, None], size=(hm * 4, wm * 4), mode="bilinear",
                      align_corners=False)[:, :, :h, :w]  # [K, 1, h, w]
    x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)[:, 0]
    return x.sigmoid() > mask_thr  # [K, H, W]


def boxes_to_frame(boxes: Tensor, out_size: tuple[int, int]) -> Tensor:
    """``[K, 4]`` (cx, cy, w, h) normalised -> ``[K, 4]`` (x1, y1, x2, y2) pixels of the
    (H, W) frame, clipped to it."""
    hh, ww = out_size
    cx, cy, bw, bh = boxes.unbind(-1)
    xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
    xyxy = xyxy * boxes.new_tensor([ww, hh, ww, hh])
    return torch.stack([xyxy[:, 0].clamp(0, ww), xyxy[:, 1].clamp(0, hh),
                        xyxy[:, 2].clamp(0, ww), xyxy[:, 3].clamp(0, hh)], -1)


def frame_instances(prob: Tensor, boxes: Tensor, embeds: Tensor, mask_fn: MaskFn,
                    input_size: tuple[int, int], out_size: tuple[int, int],
                    category_ids: Sequence[int], score_thr: float = 0.1,
                    mask_thr: float = 0.5) -> FrameInstances:
    """One frame's detections (module docstring).

    Args:
        prob: ``[Q, C]`` sigmoid class probabilities. boxes: ``[Q, 4]`` cxcywh normalised to the
            input. embeds: ``[Q, D]`` contrastive embeddings.
        mask_fn: kept query indices ``[K]`` -> mask logits ``[K, h_m, w_m]`` (stride 4).
        input_size: (h, w) of the network input. out_size: (H, W) of the frame.
        category_ids: dataset id of each of the C class columns.

    Returns:
        FrameInstances with K detections in descending score order: masks ``[K, H, W]``,
        scores ``[K]`` (max probability), labels ``[K]`` (its category id), class_probs
        ``[K, C]``, embeddings ``[K, D]``, boxes ``[K, 4]`` xyxy pixels.
    """
    keep = select_queries(prob, score_thr)  # [K]
    p = prob[keep]  # [K, C]
    scores, cols = p.max(1) if keep.numel() else (p.new_zeros(0), keep)
    masks = masks_to_frame(mask_fn(keep), input_size, out_size, mask_thr) if keep.numel() \
        else torch.zeros((0, *out_size), dtype=torch.bool)
    labels = np.asarray(category_ids, dtype=np.int64)[cols.cpu().numpy()]
    return FrameInstances(masks=masks.cpu().numpy(), scores=scores.cpu().numpy(), labels=labels,
                          class_probs=p.cpu().numpy(), embeddings=embeds[keep].cpu().numpy(),
                          boxes=boxes_to_frame(boxes[keep], out_size).cpu().numpy())


def ablation_prefilter(inst: FrameInstances, memory_cfg: MemoryConfig) -> FrameInstances:
    """The memory tracker's own pre-association filters (score, class-aware box NMS, mask NMS),
    applied by calling :meth:`MemoryBankTracker.prefilter` itself: used when another tracker
    (greedy, none) runs the paper's association ablation on the same detections."""
    if len(inst) == 0:
        return inst
    rles = encode_many(inst.masks)
    idx = MemoryBankTracker(memory_cfg).prefilter(inst, mask_iou_rle(rles, rles))
    return inst[np.sort(idx)]  # keep the input (descending score) order
