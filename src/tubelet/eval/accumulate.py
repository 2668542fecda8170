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

import numpy as np

from tubelet.eval.match_table import MatchTable
from tubelet.eval.params import EvalParams


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
        active = np.flatnonzero(npig[:, k] > 0)  # settings with a non-ignored GT
        if len(active) == 0:
            continue
        n_pos = npig[active, k]  # [C']
        # Recall point r is reached at the first detection whose recall tp/npig >= r. As tp is an
        # integer count and the division is monotone, that is the first detection with
        # tp >= k_r, k_r = the smallest k with fl(k / npig) >= r: exact integer search, no float
        # offsets, and one searchsorted for all settings and thresholds.
        k_r = np.stack([np.searchsorted(np.arange(n + 1) / n, rec_thr, side="left")
                        for n in n_pos])  # [C', R]
        idx_k = order[bounds[k]:bounds[k + 1]]
        matched_k = table.dt_matched[:, :, idx_k][active]     # [C', T, D_k]
        counted_k = ~table.dt_ignored[:, :, idx_k][active]    # [C', T, D_k]
        rank_k = table.dt_rank[idx_k]
        for mi, max_det in enumerate(params.max_dets):
            sel = np.flatnonzero(rank_k < max_det)  # [D] in accumulation order
            D = len(sel)
            if D == 0:
                recall[:, k, active, mi] = 0.0
                precision[:, :, k, active, mi] = 0.0
                continue
            matched = matched_k[:, :, sel]                    # [C', T, D]
            counted = counted_k[:, :, sel]                    # [C', T, D]
            tp_n = np.cumsum(matched & counted, axis=2)       # [C', T, D] int
            tp = tp_n.astype(np.float64)
            fp = np.cumsum(~matched & counted, axis=2).astype(np.float64)
            rc_last = tp[:, :, -1] / n_pos[:, None]           # [C', T]
            pr = tp / (fp + tp + eps)
            # Precision made monotone from the right (a running max from the end).
            pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]
            # Rows are sorted integer sequences in [0, npig]; shift row (c, t) by (c*T + t)*stride
            # so the flattened array stays sorted and one searchsorted serves every row.
            stride = int(n_pos.max()) + 1
            offsets = (np.arange(len(active) * T).reshape(len(active), T) * stride)  # [C', T]
            flat = (tp_n + offsets[:, :, None]).ravel()
            queries = k_r[:, None, :] + offsets[:, :, None]   # [C', T, R]
            inds = np.searchsorted(flat, queries.ravel(), side="left").reshape(queries.shape)
            inds -= (np.arange(len(active) * T) * D).reshape(len(active), T)[:, :, None]
            valid = inds < D  # recall point reached; beyond the last recall the precision is 0
            picked = np.take_along_axis(pr, np.minimum(inds, D - 1), axis=2)  # [C', T, R]
            q = np.where(valid, picked, 0.0)
            recall[:, k, active, mi] = rc_last.T
            precision[:, :, k, active, mi] = q.transpose(1, 2, 0)
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
