"""Frame-level mask IoU: dense (torch / numpy) and compressed-RLE (pycocotools) paths.

Shapes: N, M instances; H x W frame size. Conventions shared by every IoU in tubelet:
an empty mask has IoU 0 with everything, including another empty mask (union 0 -> IoU 0), and
``None`` in an RLE list means "no mask in this frame" (treated as empty).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

from tubelet.structures.rle import area as rle_area

RLE = dict
Dense = np.ndarray | torch.Tensor

# Counts up to 2**24 are exact in float32; bigger frames switch the matmul to float64.
_F32_EXACT = 1 << 24


def _is_rle_list(x) -> bool:
    return isinstance(x, (list, tuple))


def _rle_size(rles: Sequence[RLE | None]) -> tuple[int, int] | None:
    """The common ``[H, W]`` of the non-None RLEs (None if there are none); raises on a mix."""
    size = None
    for r in rles:
        if r is None:
            continue
        s = (int(r["size"][0]), int(r["size"][1]))
        if size is None:
            size = s
        elif s != size:
            raise ValueError(f"RLE masks of different sizes {size} and {s}")
    return size


def rle_intersections(a: Sequence[RLE | None], b: Sequence[RLE | None]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas of two lists of compressed RLEs, without decoding.

    pycocotools computes IoU on run lengths; the integer intersection is recovered exactly from
    ``iou = I / (a + b - I)``, i.e. ``I = iou * (a + b) / (1 + iou)`` (rounded: doubles carry
    far more precision than any frame area needs).

    Args:
        a: N compressed RLEs or None (empty).
        b: M compressed RLEs or None.
    Returns:
        ``(inter [N, M] int64, area_a [N] int64, area_b [M] int64)``.
    """
    n, m = len(a), len(b)
    inter = np.zeros((n, m), dtype=np.int64)
    area_a = np.zeros(n, dtype=np.int64)
    area_b = np.zeros(m, dtype=np.int64)
    ia = [i for i, r in enumerate(a) if r is not None]
    ib = [j for j, r in enumerate(b) if r is not None]
    sa, sb = _rle_size([a[i] for i in ia]), _rle_size([b[j] for j in ib])
    if sa is not None and sb is not None and sa != sb:
        raise ValueError(f"RLE masks of different sizes {sa} and {sb}")
    if ia:  # the shared helper: pycocotools' area overflows on lists of >= 256 under numpy 2
        area_a[ia] = rle_area([a[i] for i in ia])
    if ib:
        area_b[ib] = rle_area([b[j] for j in ib])
    if ia and ib:
        iou = np.asarray(mask_utils.iou([a[i] for i in ia], [b[j] for j in ib], [0] * len(ib)),
                         dtype=np.float64).reshape(len(ia), len(ib))  # [n', m']
        s = area_a[ia][:, None] + area_b[ib][None, :]
        inter[np.ix_(ia, ib)] = np.rint(iou * s / (1.0 + iou)).astype(np.int64)
    return inter, area_a, area_b


def mask_iou_rle(a: Sequence[RLE | None], b: Sequence[RLE | None]) -> np.ndarray:
    """IoU matrix ``[N, M]`` (float64) between two lists of compressed RLEs (None = empty)."""
    inter, area_a, area_b = rle_intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _flat(x):
    """``[N, *S] -> [N, prod(S)]``; works for N = 0, where ``reshape(N, -1)`` is ambiguous."""
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))


def dense_intersections(a: Dense, b: Dense) -> tuple[Dense, Dense, Dense]:
    """Pairwise intersections of binary masks ``a [N, *S]`` and ``b [M, *S]`` (any trailing shape).

    Returns ``(inter [N, M], area_a [N], area_b [M])``: float64 numpy arrays for numpy input,
    float torch tensors (exact integers) on the input's device for torch input.
    """
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ta, tb = torch.as_tensor(a), torch.as_tensor(b)
        ta, tb = _flat(ta), _flat(tb.to(ta.device))
        if ta.shape[1] != tb.shape[1]:
            raise ValueError(f"mask shapes disagree: {tuple(a.shape)} vs {tuple(b.shape)}")
        dt = torch.float32 if ta.shape[1] < _F32_EXACT else torch.float64
        fa, fb = (ta > 0.5 if ta.is_floating_point() else ta != 0).to(dt), \
                 (tb > 0.5 if tb.is_floating_point() else tb != 0).to(dt)
        return fa @ fb.T, fa.sum(1), fb.sum(1)
    na, nb = _flat(np.asarray(a)), _flat(np.asarray(b))
    if na.shape[1] != nb.shape[1]:
        raise ValueError(f"mask shapes disagree: {np.shape(a)} vs {np.shape(b)}")
    dt = np.float32 if na.shape[1] < _F32_EXACT else np.float64
    fa = (na > 0.5 if na.dtype.kind == "f" else na != 0).astype(dt)
    fb = (nb > 0.5 if nb.dtype.kind == "f" else nb != 0).astype(dt)
    return (fa @ fb.T).astype(np.float64), fa.sum(1, dtype=np.float64), fb.sum(1, dtype=np.float64)


def mask_iou_dense(a: Dense, b: Dense) -> Dense:
    """IoU matrix ``[N, M]`` of dense masks ``a [N, H, W]`` and ``b [M, H, W]``.

    Masks are bool, {0, 1} or probabilities (> 0.5 is foreground). Torch in -> torch out (same
    device, float); numpy in -> float64 numpy out.
    """
    inter, area_a, area_b = dense_intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    if isinstance(inter, torch.Tensor):
        return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def mask_iou(a: Dense | Sequence[RLE | None], b: Dense | Sequence[RLE | None]) -> Dense:
    """IoU matrix ``[N, M]``: RLE lists -> :func:`mask_iou_rle`, arrays -> :func:`mask_iou_dense`."""
    if _is_rle_list(a) != _is_rle_list(b):
        raise TypeError("mask_iou: both arguments must be RLE lists or both dense arrays")
    return mask_iou_rle(a, b) if _is_rle_list(a) else mask_iou_dense(a, b)
