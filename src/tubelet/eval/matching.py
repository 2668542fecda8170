"""Greedy COCO matching of one (video, category), at every IoU threshold.

The rules of the official ``evaluateImg`` (EVAL_NOTES, "Matching"), restated:

- GTs are stably sorted with the ignored ones (crowd, or outside the area/occlusion range) last.
- Detections are visited in score order (already sorted and cut to maxDet by the caller).
- At threshold t a detection scans the GTs in that order, skipping GTs already taken unless they
  are crowd; it keeps the GT with the highest IoU >= t, a later GT winning a tie (the running
  best is replaced when ``iou >= best``); once it holds a non-ignored GT it stops at the first
  ignored one, so an ignored GT is only taken when no regular GT qualifies.
- A detection matched to an ignored GT is ignored (neither TP nor FP); crowd GTs stay free.

Only detections whose best IoU reaches the lowest threshold can match anything, so the loops run
over those few "candidates"; everything else is unmatched at every threshold.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def greedy_match(ious: np.ndarray, gt_ignore: Sequence[bool], gt_crowd: Sequence[bool],
                 thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Match D score-sorted detections to G GTs at T IoU thresholds.

    Args:
        ious: ``[D, G]`` video IoUs, detections in score order (best first).
        gt_ignore: ``[G]`` ignore flag of each GT (crowd or out of range).
        gt_crowd: ``[G]`` crowd flag of each GT (may be matched repeatedly).
        thresholds: ``[T]`` IoU thresholds.
    Returns:
        matched: ``[T, D]`` bool, detection matched to some GT at threshold t.
        to_ignored: ``[T, D]`` bool, matched to an ignored GT (so the detection is ignored).
    """
    T, (D, G) = len(thresholds), ious.shape
    matched = np.zeros((T, D), dtype=bool)
    to_ignored = np.zeros((T, D), dtype=bool)
    if D == 0 or G == 0:
        return matched, to_ignored
    thr = [min(float(t), 1 - 1e-10) for t in thresholds]  # as the official code caps it
    if G == 1:  # the common case, vectorised over thresholds
        hit = ious[:, 0][None, :] >= np.array(thr)[:, None]  # [T, D]
        if not gt_crowd[0]:  # the first detection reaching t takes the GT, the others miss
            first = hit.argmax(axis=1)
            hit = np.zeros_like(hit)
            hit[np.arange(T), first] = ious[first, 0] >= np.array(thr)
        return hit, hit & bool(gt_ignore[0])
    cand = np.flatnonzero(ious.max(axis=1) >= min(thr))
    if len(cand) == 0:
        return matched, to_ignored
    order = sorted(range(G), key=lambda j: bool(gt_ignore[j]))  # stable: regular GTs first
    ig = [bool(gt_ignore[j]) for j in order]
    crowd = [bool(gt_crowd[j]) for j in order]
    n_regular = ig.count(False)
    rows = ious[np.ix_(cand, order)].tolist()  # [D', G] candidates, GTs in scan order
    cand = cand.tolist()
    for ti, t in enumerate(thr):
        taken = [False] * G
        for d, row in zip(cand, rows):
            best, m = t, -1
            for j in range(G):
                if taken[j] and not crowd[j]:
                    continue
                if m >= 0 and m < n_regular <= j:  # holds a regular GT, reached the ignored ones
                    break
                if row[j] < best:
                    continue
                best, m = row[j], j
            if m >= 0:
                matched[ti, d] = True
                to_ignored[ti, d] = ig[m]
                taken[m] = True
    return matched, to_ignored
