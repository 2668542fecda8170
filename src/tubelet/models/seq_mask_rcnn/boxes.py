"""Boxes around propagated masks, for the sequence score (REFERENCE_NOTES §1, "Sequence score").

The sequence score classifies, in every frame where a propagated mask is non-empty, the mask's
tight box enlarged by 1 px with the box head (:meth:`FrameMaskRCNN.classify_boxes`).
"""
from __future__ import annotations

import torch
from torch import Tensor


def mask_boxes(masks: Tensor, pad: int = 1) -> Tensor:
    """Tight boxes of binary masks, enlarged by ``pad`` pixels and clipped to the frame.

    Args:
        masks: ``[N, H, W]`` bool (e.g. propagated probability >= 0.5).
        pad: margin in pixels on every side (1 in the released code).
    Returns:
        ``[N, 4]`` float (x1, y1, x2, y2) in pixel-edge coordinates (pixel column c spans
        [c, c + 1], torchvision's convention): ``(x_min - pad, y_min - pad, x_max + 1 + pad,
        y_max + 1 + pad)`` clipped to ``[0, W] x [0, H]``. An empty mask gets the whole frame
        ``(0, 0, W, H)`` (the released code does the same; callers skip empty frames anyway).

    The released code writes the same box in inclusive coordinates (x2 = x_max + 1, clipped to
    W - 1); adding the pixel's own width gives the edge form used here.
    """
    n, h, w = masks.shape
    masks = masks.bool()
    cols = masks.any(dim=1)  # [N, W] columns holding a mask pixel
    rows = masks.any(dim=2)  # [N, H]
    xs = torch.arange(w, device=masks.device)
    ys = torch.arange(h, device=masks.device)
    big = max(h, w) + 1
    x_min = torch.where(cols, xs, big).min(dim=1).values  # [N]
    x_max = torch.where(cols, xs, -1).max(dim=1).values
    y_min = torch.where(rows, ys, big).min(dim=1).values
    y_max = torch.where(rows, ys, -1).max(dim=1).values
    boxes = torch.stack([(x_min - pad).clamp(min=0), (y_min - pad).clamp(min=0),
                         (x_max + 1 + pad).clamp(max=w), (y_max + 1 + pad).clamp(max=h)], dim=1)
    empty = ~cols.any(dim=1)  # [N]
    whole = torch.tensor([0, 0, w, h], device=masks.device)
    boxes = torch.where(empty[:, None], whole, boxes)
    return boxes.float().reshape(n, 4)
