"""Box coding with δ-maps and proposal selection (NMS per level, then across levels).

δ-maps (paper §3.2: "the deviation from the ground truth as a δ-map with respect to a fixed
grid"). The paper does not spell out the parameterisation; the authors build on YOLOv4, whose
coding is YOLOv3's, and that is what is implemented: for an anchor (a_w, a_h) at cell (c_x, c_y)
of a level with stride s,

    x = (c_x + δ_x) s,   y = (c_y + δ_y) s,   w = a_w exp(δ_w),   h = a_h exp(δ_h),
    δ_x = σ(t_x),  δ_y = σ(t_y),  δ_w = t_w,  δ_h = t_h          (t = the raw head output)

so ``δ_x, δ_y`` in (0, 1) is the centre's offset inside its cell and ``δ_w, δ_h`` the log size
ratio to the anchor. The smooth-L1 box loss compares predicted and encoded δ (paper: "Smooth L1
Loss with respect to the encoded anchors deviation from the ground truth").

Selection (paper §3.2: "regular non-max suppression algorithm; first for each level of the
pyramid, then on all levels"; notes §2: confidence 0.5, NMS 0.3, at most 50 proposals).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor
from torchvision.ops import batched_nms, nms


def make_grid(h: int, w: int, device=None) -> Tensor:
    """``[H, W, 2]`` cell indices (c_x, c_y) as floats: ``grid[i, j] = (j, i)``."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def encode(boxes: Tensor, anchors: Tensor, grid: Tensor, stride: float) -> Tensor:
    """Boxes -> δ (the inverse of :func:`decode`); shapes broadcast.

    Args:
        boxes: ``[..., 4]`` (x1, y1, x2, y2) pixels, positive width and height.
        anchors: ``[..., 2]`` (a_w, a_h) pixels.
        grid: ``[..., 2]`` (c_x, c_y) cell of each box (normally the cell holding its centre).
        stride: level stride s in pixels.

    Returns:
        ``[..., 4]`` (δ_x, δ_y, δ_w, δ_h) = (x / s - c_x, y / s - c_y, log(w / a_w), log(h / a_h)).
    """
    ctr = (boxes[..., :2] + boxes[..., 2:]) / 2  # [..., 2] (x, y)
    size = boxes[..., 2:] - boxes[..., :2]      # [..., 2] (w, h)
    return torch.cat([ctr / stride - grid, torch.log(size / anchors)], dim=-1)


def decode(deltas: Tensor, anchors: Tensor, grid: Tensor, stride: float) -> Tensor:
    """δ -> boxes ``[..., 4]`` (x1, y1, x2, y2) pixels; arguments as in :func:`encode`."""
    ctr = (grid + deltas[..., :2]) * stride
    size = anchors * torch.exp(deltas[..., 2:])
    return torch.cat([ctr - size / 2, ctr + size / 2], dim=-1)


def activate(raw: Tensor, max_log_scale: float = 8.0) -> Tensor:
    """Raw box outputs ``[..., 4]`` (t_x, t_y, t_w, t_h) -> δ: sigmoid on the offsets; the log
    scales are clamped at ``max_log_scale`` only so ``exp`` cannot overflow early in training."""
    return torch.cat([torch.sigmoid(raw[..., :2]), raw[..., 2:].clamp(max=max_log_scale)], dim=-1)


def decode_level(raw: Tensor, anchors: Tensor, stride: float) -> Tensor:
    """Decode one level of head output.

    Args:
        raw: ``[B, A, H, W, 4]`` raw box channels (t_x, t_y, t_w, t_h).
        anchors: ``[A, 2]`` (w, h) pixels of this level.
        stride: the level's stride.

    Returns:
        ``[B, A, H, W, 4]`` boxes (x1, y1, x2, y2) in pixels of the network input.
    """
    h, w = raw.shape[2:4]
    grid = make_grid(h, w, raw.device)  # [H, W, 2]
    return decode(activate(raw), anchors[:, None, None, :].to(raw.dtype), grid, stride)


@dataclass
class Proposals:
    """Proposals of one image, N of them, sorted by decreasing score.

    Attributes:
        boxes: ``[N, 4]`` (x1, y1, x2, y2); scores: ``[N]``; levels: ``[N]`` long level index;
        index: ``[N]`` long index into the level's flattened candidates (``A * H * W`` order for
        head outputs); labels: ``[N]`` long, or None when the selection was class-agnostic.
    """
    boxes: Tensor
    scores: Tensor
    levels: Tensor
    index: Tensor
    labels: Tensor | None = None

    def __len__(self) -> int:
        return self.scores.shape[0]


def _nms(boxes: Tensor, scores: Tensor, labels: Tensor | None, thresh: float) -> Tensor:
    boxes, scores = boxes.float(), scores.float()
    return nms(boxes, scores, thresh) if labels is None else batched_nms(boxes, scores, labels, thresh)


def per_level_nms(boxes: Sequence[Tensor], scores: Sequence[Tensor], conf_thresh: float = 0.5,
                  nms_thresh: float = 0.3, pre_nms_topk: int = 1000,
                  labels: Sequence[Tensor] | None = None) -> list[Tensor]:
    """First stage: within each level, drop scores below ``conf_thresh``, keep the ``pre_nms_topk``
    best, run NMS at IoU ``nms_thresh`` (class-aware when ``labels`` are given).

    Args:
        boxes: per level ``[K_l, 4]``; scores: per level ``[K_l]``; labels: per level ``[K_l]``.

    Returns:
        per level ``[k_l]`` long indices into that level's candidates, by decreasing score.
    """
    keep = []
    for i, (b, s) in enumerate(zip(boxes, scores)):
        idx = torch.nonzero(s >= conf_thresh).flatten()
        if idx.numel() > pre_nms_topk:
            idx = idx[s[idx].topk(pre_nms_topk).indices]
        lab = None if labels is None else labels[i][idx]
        keep.append(idx[_nms(b[idx], s[idx], lab, nms_thresh)])
    return keep


def select_proposals(boxes: Sequence[Tensor], scores: Sequence[Tensor], conf_thresh: float = 0.5,
                     nms_thresh: float = 0.3, max_proposals: int = 50, pre_nms_topk: int = 1000,
                     labels: Sequence[Tensor] | None = None) -> Proposals:
    """NMS per level (:func:`per_level_nms`), then NMS over the survivors of all levels at the
    same IoU, then the ``max_proposals`` best (paper §3.2; "higher variety and less impact on
    device memory" than one NMS over everything).

    Args:
        boxes: per level ``[K_l, 4]`` (x1, y1, x2, y2); scores: per level ``[K_l]`` confidences;
        labels: optional per level ``[K_l]`` classes for class-aware NMS (default class-agnostic).

    Returns:
        :class:`Proposals` with at most ``max_proposals`` entries.
    """
    keep = per_level_nms(boxes, scores, conf_thresh, nms_thresh, pre_nms_topk, labels)
    device = scores[0].device
    lvl = torch.cat([torch.full((k.numel(),), i, dtype=torch.long, device=device)
                     for i, k in enumerate(keep)])
    idx = torch.cat(keep)
    b = torch.cat([boxes[i][k] for i, k in enumerate(keep)]).reshape(-1, 4)
    s = torch.cat([scores[i][k] for i, k in enumerate(keep)])
    lab = None if labels is None else torch.cat([labels[i][k] for i, k in enumerate(keep)])
    final = _nms(b, s, lab, nms_thresh)[:max_proposals]  # sorted by decreasing score
    return Proposals(b[final], s[final], lvl[final], idx[final],
                     None if lab is None else lab[final])
