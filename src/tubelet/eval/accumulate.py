"""Precision/recall accumulation and the summary numbers (official ``accumulate``/``summarize``).

Shapes: C evaluation settings (area / occlusion ranges), T IoU thresholds, R recall points,
K categories, M maxDets values, N detections, G ground-truth tracks, V videos.

Semantics kept exactly (EVAL_NOTES, "Accumulation"):

- per category, the detections of all videos are concatenated video by video (sorted video ids),
  each video's in score order cut to maxDet, then stably sorted by score: a tie across videos goes
  to the smaller video id;
- TP = matched and not ignored, FP = unmatched and not ignored; ``recall = cumTP / npig`` (npig =
  non-ignored GTs), ``precision = cumTP / (cumTP + cumFP + eps)`` made monotone from the right;
- at recall point r the precision at the first index with recall >= r (``searchsorted`` left),
  0 beyond the last; recall of the setting = the last recall value (0 without detections);
- a category without non-ignored GT gets -1 and is left out of every mean.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tubelet.eval.params import EvalParams


@dataclass
class MatchTable:
    """Outcome of matching every (video, category), for every evaluation setting."""
    settings: list[str]        # C setting names: all, small, medium, large[, occ_light, ...]
    category_ids: list[int]    # K GT category ids, sorted
    video_ids: list[int]       # V GT video ids, sorted
    dt_category: np.ndarray    # [N] int, index into category_ids
    dt_video: np.ndarray       # [N] int, index into video_ids
    dt_rank: np.ndarray        # [N] int, rank by score within its (video, category), 0 = best
    dt_score: np.ndarray       # [N] float64
    dt_matched: np.ndarray     # [C, T, N] bool, matched to a GT at IoU threshold t
    dt_ignored: np.ndarray     # [C, T, N] bool, matched to an ignored GT, or unmatched & out of range
    gt_category: np.ndarray    # [G] int, index into category_ids
    gt_video: np.ndarray       # [G] int, index into video_ids
    gt_ignored: np.ndarray     # [C, G] bool, crowd or out of the setting's range


def accumulate(table: MatchTable, params: EvalParams,
               video_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of every (threshold, category, setting, maxDet).

    Args:
        video_mask: ``[V]`` bool, evaluate only these videos (the YouTube-VIS 2022 short/long
            subsets); None for all.
    Returns:
        precision ``[T, R, K, C, M]`` and recall ``[T, K, C, M]``, -1 where a category has no
        non-ignored GT.
    """
    thr, rec_thr = params.iou_thresholds, params.recall_thresholds
    T, R, K, C, M = len(thr), len(rec_thr), len(table.category_ids), len(table.settings), 3
    precision = -np.ones((T, R, K, C, M))
    recall = -np.ones((T, K, C, M))

    dt_sel = np.arange(len(table.dt_score))
    gt_sel = np.arange(len(table.gt_category))
    if video_mask is not None:
        dt_sel = dt_sel[video_mask[table.dt_video]]
        gt_sel = gt_sel[video_mask[table.gt_video]]
    # Non-ignored GT count per (setting, category): [C, K].
    npig = np.stack([np.bincount(table.gt_category[gt_sel], weights=~table.gt_ignored[c, gt_sel],
                                 minlength=K) for c in range(C)]).astype(np.int64)
    # Global order: by category, then score descending, then video, then rank (a stable sort of the
    # per-video score-sorted concatenation).
    cat = table.dt_category[dt_sel]
    order = dt_sel[np.lexsort((table.dt_rank[dt_sel], table.dt_video[dt_sel],
                               -table.dt_score[dt_sel], cat))]
    bounds = np.searchsorted(table.dt_category[order], np.arange(K + 1), side="left")
    eps = np.spacing(1)
    for k in range(K):
        if not npig[:, k].any():
            continue
        idx_k = order[bounds[k]:bounds[k + 1]]
        for mi, max_det in enumerate(params.max_dets):
            sel = idx_k[table.dt_rank[idx_k] < max_det]  # [D] in accumulation order
            D = len(sel)
            for c in range(C):
                n_pos = npig[c, k]
                if n_pos == 0:
                    continue
                if D == 0:
                    recall[:, k, c, mi] = 0.0
                    precision[:, :, k, c, mi] = 0.0
                    continue
                matched = table.dt_matched[c][:, sel]      # [T, D]
                counted = ~table.dt_ignored[c][:, sel]     # [T, D]
                tp = np.cumsum(matched & counted, axis=1).astype(np.float64)
                fp = np.cumsum(~matched & counted, axis=1).astype(np.float64)
                rc = tp / n_pos
                pr = tp / (fp + tp + eps)
                recall[:, k, c, mi] = rc[:, -1]
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # monotone from the right
                for t in range(T):
                    inds = np.searchsorted(rc[t], rec_thr, side="left")  # [R]
                    valid = inds < D
                    q = np.zeros(R)
                    q[valid] = pr[t, inds[valid]]
                    precision[t, :, k, c, mi] = q
    return precision, recall


def _mean_valid(s: np.ndarray) -> float:
    """Mean of the entries > -1 (``-1`` when there are none), as the official summarize."""
    v = s[s > -1]
    return float(np.mean(v)) if len(v) else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray, params: EvalParams,
              settings: list[str]) -> dict[str, float]:
    """The standard numbers from ``precision [T, R, K, C, M]`` and ``recall [T, K, C, M]``.

    Returns ``AP, AP50, AP75, AP_s, AP_m, AP_l, AR{m1}, AR{m2}, AR{m3}, AR_s, AR_m, AR_l`` (AR1,
    AR10, AR100 with the default maxDets) and, when the settings include the OVIS occlusion
    ranges, ``AP_occ_light/medium/heavy`` and ``AR_occ_light/medium/heavy``.
    """
    thr = params.iou_thresholds
    c_of = {name: i for i, name in enumerate(settings)}
    last = len(params.max_dets) - 1

    def ap(setting: str = "all", iou: float | None = None) -> float:
        s = precision
        if iou is not None:
            s = s[np.where(iou == thr)[0]]
        return _mean_valid(s[:, :, :, c_of[setting], last])

    def ar(setting: str = "all", m: int = last) -> float:
        return _mean_valid(recall[:, :, c_of[setting], m])

    out = {"AP": ap(), "AP50": ap(iou=0.5), "AP75": ap(iou=0.75),
           "AP_s": ap("small"), "AP_m": ap("medium"), "AP_l": ap("large")}
    for mi, m in enumerate(params.max_dets):
        out[f"AR{m}"] = ar(m=mi)
    out.update({"AR_s": ar("small"), "AR_m": ar("medium"), "AR_l": ar("large")})
    if "occ_light" in c_of:
        for level in ("light", "medium", "heavy"):
            out[f"AP_occ_{level}"] = ap(f"occ_{level}")
        for level in ("light", "medium", "heavy"):
            out[f"AR_occ_{level}"] = ar(f"occ_{level}")
    return out


def per_category_ap(precision: np.ndarray) -> np.ndarray:
    """``[K]`` AP of each category (setting "all", largest maxDet), -1 without GT."""
    return np.array([_mean_valid(precision[:, :, k, 0, -1]) for k in range(precision.shape[2])])


def pr_curves(precision: np.ndarray, params: EvalParams) -> dict[str, np.ndarray]:
    """Category-mean precision ``[R]`` at IoU 0.50, 0.75 and averaged over all thresholds
    (setting "all", largest maxDet); -1 where no category has GT."""
    s = precision[:, :, :, 0, -1]  # [T, R, K]
    valid = s > -1

    def mean(x: np.ndarray, v: np.ndarray, axis) -> np.ndarray:
        n = v.sum(axis=axis)
        tot = np.where(v, x, 0.0).sum(axis=axis)
        return np.where(n > 0, tot / np.maximum(n, 1), -1.0)

    t50 = np.where(params.iou_thresholds == 0.5)[0]
    t75 = np.where(params.iou_thresholds == 0.75)[0]
    return {"IoU=0.50": mean(s[t50], valid[t50], (0, 2)),
            "IoU=0.75": mean(s[t75], valid[t75], (0, 2)),
            "IoU=0.50:0.95": mean(s, valid, (0, 2))}
