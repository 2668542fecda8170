"""The whole sequence reduction of Propose-Reduce: agnostic NMS, then category-aware soft-NMS.

Eq. 2 (category-agnostic sequence NMS, hard) then Eq. 3 (category-aware sequence NMS, soft) of
the 2021 category-aware paper, producing one output record per (sequence, class) whose score
passes the output threshold. Shapes: N sequences, C foreground classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tubelet.ops.seq_iou import sequence_iou
from tubelet.ops.seq_nms import _np, category_aware_soft_nms, sequence_nms


@dataclass
class ReduceConfig:
    """Defaults of the 2021 category-aware paper (Sec. 4.2) and the released code."""
    aware: bool = True  # run the category-aware soft-NMS after the agnostic NMS (Eq. 3)
    agnostic_iou: float | None = None  # θ of the agnostic NMS; None -> 0.9 with aware, 0.5 without
    agnostic_score_stop: float | None = 0.05  # agnostic NMS stops below this (released code)
    method: str = "gaussian"  # soft-NMS decay: "gaussian" exp(-IoU^2/σ) or "linear" (1 - IoU)
    sigma: float = 0.5  # σ of the Gaussian decay
    aware_iou: float = 0.5  # IoU threshold of the linear decay (unused by the Gaussian one)
    aware_score_thr: float = 1e-3  # soft-NMS stops below / does not decay scores under this
    max_per_class: int = 100  # at most this many sequences kept per class
    output_thr: float | None = None  # output records need score > this; None -> 0.001 / 0.05

    def resolved_agnostic_iou(self) -> float:
        return self.agnostic_iou if self.agnostic_iou is not None else (0.9 if self.aware else 0.5)

    def resolved_output_thr(self) -> float:
        return self.output_thr if self.output_thr is not None else (1e-3 if self.aware else 0.05)


class ReducedRecord(NamedTuple):
    index: int  # sequence index into the input
    klass: int  # class column of ``class_scores``
    score: float  # final score (decayed by the soft-NMS when aware)


def reduce_sequences(class_scores, iou=None, masks=None,
                     cfg: ReduceConfig | None = None) -> list[ReducedRecord]:
    """Reduce sequence proposals to output records.

    1. Category-agnostic sequence NMS on ``max_c class_scores`` (θ = ``agnostic_iou``).
    2. With ``aware``: category-aware soft-NMS over the survivors, class by class; else each
       survivor keeps its undecayed class scores.
    3. One record per (sequence, class) with score ``> output_thr`` (the paper: "larger than").

    Args:
        class_scores: ``[N, C]`` foreground class scores (mean class distribution per sequence,
            background column removed).
        iou: ``[N, N]`` sequence IoU, or None to compute it from ``masks``.
        masks: ``[N, T, H, W]`` dense or N lists of T RLE-or-None.
        cfg: :class:`ReduceConfig` (defaults of the paper).
    Returns:
        :class:`ReducedRecord` list, sorted by descending score (ties: class, then index).
    """
    cfg = cfg or ReduceConfig()
    s = _np(class_scores).astype(np.float64)
    if s.ndim != 2:
        raise ValueError(f"class_scores must be [N, C], got shape {s.shape}")
    n = s.shape[0]
    if iou is None:
        if masks is None:
            raise ValueError("reduce_sequences needs iou or masks")
        iou = sequence_iou(masks)
    iou = _np(iou).astype(np.float64)
    if n == 0 or s.shape[1] == 0:
        return []
    agnostic = s.max(1)  # [N]
    kept = sequence_nms(agnostic, iou, iou_threshold=cfg.resolved_agnostic_iou(),
                        score_stop=cfg.agnostic_score_stop)
    thr = cfg.resolved_output_thr()
    if cfg.aware:
        picks = category_aware_soft_nms(s[kept], iou[np.ix_(kept, kept)], sigma=cfg.sigma,
                                        method=cfg.method, iou_threshold=cfg.aware_iou,
                                        score_threshold=cfg.aware_score_thr,
                                        max_per_class=cfg.max_per_class)
        recs = [ReducedRecord(int(kept[p.index]), p.klass, p.score) for p in picks]
    else:
        recs = [ReducedRecord(int(i), int(k), float(s[i, k]))
                for i in kept for k in range(s.shape[1])]
    recs = [r for r in recs if r.score > thr]
    recs.sort(key=lambda r: (-r.score, r.klass, r.index))
    return recs
