"""Thresholded bilinear upsampling of mask maps, computed only where a mask can be on.

``paste_thresholded(maps, s, h, w, thr, out, post)`` writes into ``out[i]`` exactly what

    post(F.interpolate(maps[:, None], scale_factor=s, mode="bilinear",
                       align_corners=False))[:, 0, :h, :w] > thr

gives, bit for bit, for a power-of-two ``s`` and a monotone ``post`` (identity for maps of
probabilities, ``torch.sigmoid`` for logits), while upsampling each mask only around its
low-resolution pixels with ``post(value) > thr - 1e-6``.

Why it is exact: a bilinear output pixel is a convex combination of its 2x2 source neighbours
(monotone in each, with round-to-nearest), so it can pass the threshold only next to a source
pixel that nearly passes; the 1e-6 margin absorbs rounding. Each mask's box of such pixels, grown
by 2 source pixels, is upsampled alone: with a power-of-two factor the source coordinate
``(y + 0.5) / s - 0.5`` of every output pixel is computed exactly in the crop as in the whole
map, and the pixels where the crop's edge clamping differs from the whole map's lie where no
neighbour nearly passes (off in both).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def is_power_of_two(s: int) -> bool:
    return s > 0 and s & (s - 1) == 0


def paste_thresholded(maps: Tensor, stride: int, h: int, w: int, threshold: float, out: Tensor,
                      post: Callable[[Tensor], Tensor] | None = None) -> None:
    """``maps`` ``[N, H_m, W_m]`` float -> ``out[i, :h, :w]`` bool (``out`` ``[N, >=h, >=w]``,
    all False on entry), as the module docstring says. ``stride`` must be a power of two."""
    if not is_power_of_two(stride):
        raise ValueError(f"stride must be a power of two, got {stride}")
    hm, wm = maps.shape[-2:]
    near = (post(maps) if post is not None else maps) > threshold - 1e-6
    rows = near.any(dim=2).cpu().numpy()  # [N, H_m]
    cols = near.any(dim=1).cpu().numpy()  # [N, W_m]
    # each mask's first / last near row and column, found for all N at once (argmax of a bool
    # row is its first True)
    r_lo, r_hi = rows.argmax(1), hm - 1 - rows[:, ::-1].argmax(1)
    c_lo, c_hi = cols.argmax(1), wm - 1 - cols[:, ::-1].argmax(1)
    for i in np.flatnonzero(rows.any(1)).tolist():
        r0, r1 = max(int(r_lo[i]) - 2, 0), min(int(r_hi[i]) + 3, hm)
        c0, c1 = max(int(c_lo[i]) - 2, 0), min(int(c_hi[i]) + 3, wm)
        x = F.interpolate(maps[i, r0:r1, c0:c1][None, None], scale_factor=stride,
                          mode="bilinear", align_corners=False)[0, 0]
        if post is not None:
            x = post(x)
        y0, x0 = r0 * stride, c0 * stride
        y1, x1 = min(r1 * stride, h), min(c1 * stride, w)
        if y1 > y0 and x1 > x0:
            out[i, y0:y1, x0:x1] = x[:y1 - y0, :x1 - x0] > threshold


def column_major_masks(n: int, h: int, w: int, device=None) -> Tensor:
    """All-False bool ``[N, H, W]`` stored as a contiguous ``[N, W, H]`` (each mask column by
    column): the layout COCO RLE encoding reads, so ``structures.rle.encode_many`` copies
    nothing."""
    return torch.zeros(n, w, h, dtype=torch.bool, device=device).transpose(1, 2)
