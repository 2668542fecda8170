"""Sequence scoring and sequence NMS of Propose-Reduce and its category-aware reduction.

Shapes: N sequences, T frames, C foreground classes. Class distributions that include the
background carry it in column 0 (``[N, T, C + 1]``, columns 1..C = foreground classes in the
order of the caller's category list); score matrices passed to the NMS functions hold the C
foreground columns only.

Ties are broken by the lower index everywhere (``argmax`` takes the first maximum), so every
function here is deterministic.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from tubelet.ops.mask_iou import mask_iou
from tubelet.ops.seq_iou import sequence_iou


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class SequenceScores(NamedTuple):
    category: np.ndarray  # [N, C + 1] mean class distribution (column 0 = background)
    agnostic: np.ndarray  # [N] max over the foreground columns 1..C


def sequence_scores(frame_probs, nonempty, average_over: str = "nonempty") -> SequenceScores:
    """Sequence score of Propose-Reduce (Eq. 1 of the 2021 paper).

    Args:
        frame_probs: ``[N, T, C + 1]`` per-frame class distributions of each sequence's mask
            (box head softmax on the mask's tight box; column 0 = background).
        nonempty: ``[N, T]`` bool, whether the sequence's mask is non-empty in frame t.
        average_over: ``"nonempty"`` (default; released code, and the only frames where the
            per-frame distribution is defined): mean over the non-empty frames. ``"all"``: the
            paper's literal ``1/T sum_t``, with empty frames contributing zero.
    Returns:
        :class:`SequenceScores` ``(category [N, C + 1], agnostic [N])``. A sequence that is never
        non-empty scores background = 1 (one-hot column 0), hence agnostic score 0.
    """
    p = _np(frame_probs).astype(np.float64)
    ne = _np(nonempty).astype(bool)
    if p.ndim != 3 or ne.shape != p.shape[:2] or p.shape[2] < 2:
        raise ValueError(f"sequence_scores: frame_probs {p.shape} must be [N, T, C+1] (C >= 1) "
                         f"and nonempty {ne.shape} must be [N, T]")
    if average_over not in ("nonempty", "all"):
        raise ValueError(f"average_over must be 'nonempty' or 'all', got {average_over!r}")
    count = ne.sum(1).astype(np.float64)  # [N]
    total = (p * ne[:, :, None]).sum(1)  # [N, C + 1]
    denom = count if average_over == "nonempty" else np.full_like(count, p.shape[1])
    cate = total / np.maximum(denom, 1.0)[:, None]
    cate[count == 0] = 0.0
    cate[count == 0, 0] = 1.0  # never visible: pure background
    return SequenceScores(cate, cate[:, 1:].max(1) if len(cate) else np.zeros(0))


def nms_from_iou(scores, iou, iou_threshold: float, score_stop: float | None = None) -> np.ndarray:
    """Greedy NMS on a precomputed IoU matrix (Alg. 1 of the Propose-Reduce supplementary).

    Repeatedly keep the highest remaining score and drop every remaining item whose IoU with it is
    ``>= iou_threshold``. With ``score_stop``, stop once the best remaining score is below it,
    except that the first (best) item is always kept.

    Args:
        scores: ``[N]``.
        iou: ``[N, N]`` pairwise IoU.
    Returns:
        ``[K]`` int64 indices of the kept items, in the order they were kept (descending score).
    """
    s = _np(scores).astype(np.float64).reshape(-1)
    iou = _np(iou).astype(np.float64)
    n = len(s)
    if iou.shape != (n, n):
        raise ValueError(f"nms_from_iou: iou has shape {iou.shape}, expected ({n}, {n})")
    order = np.argsort(-s, kind="stable")  # descending score, lower index first on ties
    alive = np.ones(n, dtype=bool)
    keep: list[int] = []
    for i in order:
        if not alive[i]:
            continue
        if score_stop is not None and keep and s[i] < score_stop:
            break
        keep.append(int(i))
        alive &= iou[i] < iou_threshold  # also removes i itself unless its self-IoU is < θ
        alive[i] = False
    return np.asarray(keep, dtype=np.int64)


def sequence_nms(scores, iou=None, masks=None, iou_threshold: float = 0.5,
                 score_stop: float | None = 0.05) -> np.ndarray:
    """Category-agnostic sequence NMS (Alg. 1 of the Propose-Reduce supplementary).

    Args:
        scores: ``[N]`` category-agnostic sequence scores.
        iou: ``[N, N]`` precomputed sequence IoU, or None to compute it from ``masks``.
        masks: ``[N, T, H, W]`` dense or N lists of T RLE-or-None (used when ``iou`` is None).
        iou_threshold: θ; a remaining sequence with IoU ``>= θ`` to a kept one is dropped.
            0.5 in the Propose-Reduce paper; 0.9 when the category-aware step follows.
        score_stop: stop when the best remaining score is below it (0.05, released code; Alg. 1
            itself has no stop, which is ``score_stop=None``). The first sequence is always kept.
    Returns:
        ``[K]`` int64 kept indices in the order kept.
    """
    if iou is None:
        if masks is None:
            raise ValueError("sequence_nms needs iou or masks")
        iou = sequence_iou(masks)
    return nms_from_iou(scores, iou, iou_threshold, score_stop)


def mask_nms(scores, masks=None, iou=None, iou_threshold: float = 0.5) -> np.ndarray:
    """Class-agnostic greedy NMS of single-frame masks (``[N, H, W]`` dense or N RLEs).

    Drops a mask whose IoU with an already kept one is ``>= iou_threshold``; returns the kept
    indices in descending score order.
    """
    if iou is None:
        if masks is None:
            raise ValueError("mask_nms needs iou or masks")
        iou = mask_iou(masks, masks)
    return nms_from_iou(scores, iou, iou_threshold, None)


class SoftNMSPick(NamedTuple):
    index: int  # sequence index (row of the score matrix)
    klass: int  # class column of the score matrix
    score: float  # decayed score at the time it was picked


def category_aware_soft_nms(class_scores, iou, sigma: float = 0.5, method: str = "gaussian",
                            iou_threshold: float = 0.5, score_threshold: float = 1e-3,
                            max_per_class: int = 100) -> list[SoftNMSPick]:
    """Category-aware sequence soft-NMS (Eq. 3 of the 2021 category-aware paper).

    For each class column c independently: repeatedly pick the sequence with the highest current
    class-c score, then decay the class-c score of every other remaining sequence j whose score
    is still ``>= score_threshold``:

    - ``"gaussian"`` (default, released code): ``s_j *= exp(-IoU(i, j)^2 / sigma)``; the Gaussian
      penalty has no IoU threshold (Soft-NMS, Bodla et al. 2017), so ``iou_threshold`` is unused.
    - ``"linear"``: ``s_j *= 1 - IoU(i, j)`` when ``IoU(i, j) >= iou_threshold``, else unchanged.

    A class stops when its best remaining score is below ``score_threshold`` or after
    ``max_per_class`` picks. All classes advance together, one pick per class per step (the
    result is identical to running them one after another).

    Args:
        class_scores: ``[N, C]`` foreground class scores per sequence.
        iou: ``[N, N]`` sequence IoU.
    Returns:
        :class:`SoftNMSPick` triples ``(index, klass, score)``, grouped by class (ascending),
        within a class in pick order.
    """
    s = _np(class_scores).astype(np.float64).copy()
    iou = _np(iou).astype(np.float64)
    if s.ndim != 2:
        raise ValueError(f"class_scores must be [N, C], got shape {s.shape}")
    n, c = s.shape
    if iou.shape != (n, n):
        raise ValueError(f"iou has shape {iou.shape}, expected ({n}, {n})")
    if method not in ("gaussian", "linear"):
        raise ValueError(f"method must be 'gaussian' or 'linear', got {method!r}")
    if method == "gaussian":
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        decay = np.exp(-iou ** 2 / sigma)  # [N, N] factor applied to j when i is picked
    else:
        decay = np.where(iou >= iou_threshold, 1.0 - iou, 1.0)
    alive = np.ones((n, c), dtype=bool)
    picks: list[list[SoftNMSPick]] = [[] for _ in range(c)]
    active = np.ones(c, dtype=bool)
    cols = np.arange(c)
    for _ in range(min(n, max_per_class)):
        cur = np.where(alive, s, -np.inf)  # [N, C]
        best = cur.argmax(0) if n else np.zeros(c, dtype=np.int64)  # [C]
        best_s = cur[best, cols] if n else np.full(c, -np.inf)
        active &= best_s >= score_threshold
        if not active.any():
            break
        for k in np.nonzero(active)[0]:
            picks[k].append(SoftNMSPick(int(best[k]), int(k), float(best_s[k])))
        alive[best[active], cols[active]] = False
        f = decay[best[active]].T  # [N, C_active]: factor for each j given class k's pick
        sub = s[:, active]
        sub = np.where(alive[:, active] & (sub >= score_threshold), sub * f, sub)
        s[:, active] = sub
    return [p for per_class in picks for p in per_class]
