"""Box conversions, pairwise IoU / GIoU and the inverse sigmoid used by Deformable DETR.

DETR-family boxes are ``(cx, cy, w, h)`` normalised by the image size (0..1); IoU and GIoU are
computed on corner boxes ``(x1, y1, x2, y2)``. GIoU (Rezatofighi et al. 2019, Alg. 1):
``IoU - (|C| - |A u B|) / |C|`` with C the smallest box enclosing both.
"""
from __future__ import annotations

import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[..., 4]`` (cx, cy, w, h) -> ``[..., 4]`` (x1, y1, x2, y2)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``[..., 4]`` (x1, y1, x2, y2) -> ``[..., 4]`` (cx, cy, w, h)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def _area(boxes: Tensor) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise IoU and union area of ``a [N, 4]`` and ``b [M, 4]`` (xyxy) -> two ``[N, M]``."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)  # [N, M]
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return inter / union.clamp(min=1e-12), union


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU ``[N, M]`` of xyxy boxes ``a [N, 4]``, ``b [M, 4]`` (0 for empty unions)."""
    return box_iou_union(a, b)[0]


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise GIoU ``[N, M]`` in [-1, 1] of xyxy boxes ``a [N, 4]``, ``b [M, 4]``."""
    iou, union = box_iou_union(a, b)
    lt = torch.minimum(a[:, None, :2], b[None, :, :2])
    rb = torch.maximum(a[:, None, 2:], b[None, :, 2:])
    enclose = (rb - lt).clamp(min=0).prod(-1)  # [N, M] area of C
    return iou - (enclose - union) / enclose.clamp(min=1e-12)


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``log(x / (1 - x))`` with x clamped to [0, 1] and both terms to >= eps (finite at 0 and 1),
    the box-refinement space of Deformable DETR (Sec. 4 / App. A.4)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))
