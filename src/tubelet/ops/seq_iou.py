"""Sequence (spatio-temporal) mask IoU, Eq. 2 of Propose-Reduce.

For two mask sequences M and N over T frames::

    IoU(M, N) = sum_t |M_t ∩ N_t| / sum_t |M_t ∪ N_t|

A frame where only one sequence has a mask adds that mask's area to the union; a frame where both
are empty (or ``None``) adds nothing; a pair whose total union is 0 has IoU 0. This equals the IoU
of the two ``T x H x W`` volumes, which is how the dense path computes it (frame by frame, so the
per-frame products stay exact in float32 and memory stays at one frame).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tubelet.ops.mask_iou import RLE, Dense, _rle_size, dense_intersections, rle_intersections

RLESeqs = Sequence[Sequence[RLE | None]]  # N sequences x T frames


def sequence_iou_dense(a: Dense, b: Dense | None = None) -> Dense:
    """Sequence IoU matrix of dense mask sequences.

    Args:
        a: ``[N, T, H, W]`` masks (bool, {0,1} or probabilities > 0.5), numpy or torch.
        b: ``[M, T, H, W]``; None means ``a`` against itself.
    Returns:
        ``[N, M]`` IoU (float64 numpy, or float torch on the input's device).
    """
    b = a if b is None else b
    if a.ndim != 4 or b.ndim != 4 or tuple(a.shape[1:]) != tuple(b.shape[1:]):
        raise ValueError(f"sequence_iou_dense expects [N, T, H, W] and [M, T, H, W] of the same "
                         f"T, H, W; got {tuple(a.shape)} and {tuple(b.shape)}")
    is_torch = isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)
    n, m, t_len = a.shape[0], b.shape[0], a.shape[1]
    if is_torch:
        dev = a.device if isinstance(a, torch.Tensor) else b.device
        inter = torch.zeros((n, m), dtype=torch.float64, device=dev)
        area_a = torch.zeros(n, dtype=torch.float64, device=dev)
        area_b = torch.zeros(m, dtype=torch.float64, device=dev)
    else:
        inter, area_a, area_b = np.zeros((n, m)), np.zeros(n), np.zeros(m)
    for t in range(t_len):
        i_t, a_t, b_t = dense_intersections(a[:, t], b[:, t])  # [N, M], [N], [M]
        inter += i_t
        area_a += a_t
        area_b += b_t
    union = area_a[:, None] + area_b[None, :] - inter  # [N, M]
    if is_torch:
        return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def sequence_iou_rle(a: RLESeqs, b: RLESeqs | None = None) -> np.ndarray:
    """Sequence IoU matrix of RLE mask sequences, vectorised per frame by pycocotools.

    Nothing is decoded: each frame is one ``pycocotools.mask.iou`` call over the sequences that
    have a mask there, so the cost is T calls of O(N·M) run-length comparisons.

    Args:
        a: N sequences, each a list of T compressed RLEs or None.
        b: M sequences of the same T; None means ``a`` against itself.
    Returns:
        ``[N, M]`` float64 IoU.
    """
    self_iou = b is None
    b = a if b is None else b
    n, m = len(a), len(b)
    lengths = {len(s) for s in a} | {len(s) for s in b}
    if len(lengths) > 1:
        raise ValueError(f"sequence_iou_rle: sequences of different lengths {sorted(lengths)}")
    t_len = lengths.pop() if lengths else 0
    inter = np.zeros((n, m), dtype=np.int64)
    area_a = np.zeros(n, dtype=np.int64)
    area_b = np.zeros(m, dtype=np.int64)
    size = None
    for t in range(t_len):
        fa = [s[t] for s in a]
        fb = fa if self_iou else [s[t] for s in b]
        for frame_size in (_rle_size(fa), _rle_size(fb)):  # one frame size for the whole video
            if frame_size is not None:
                if size is not None and frame_size != size:
                    raise ValueError(f"RLE masks of different sizes {size} and {frame_size}")
                size = frame_size
        i_t, a_t, b_t = rle_intersections(fa, fb)
        inter += i_t
        area_a += a_t
        area_b += b_t
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def sequence_iou(a, b=None):
    """Sequence IoU ``[N, M]``: RLE sequences -> :func:`sequence_iou_rle`, arrays -> dense."""
    if isinstance(a, (list, tuple)):
        if b is not None and not isinstance(b, (list, tuple)):
            raise TypeError("sequence_iou: both arguments must be RLE sequences or both arrays")
        return sequence_iou_rle(a, b)
    return sequence_iou_dense(a, b)
