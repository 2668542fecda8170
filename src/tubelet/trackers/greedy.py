"""The greedy tracker of YOLOv4+1seg (Sec. 3.1 of the 2021 paper): gating, Best Friend (BF),
Lonely Best Friend (LBF).

Per frame t (N detections with confidence >= 0.6, M tracks so far)::

    A[i, j] = 1 - maskIoU(det_i, last valid mask of track j)  (+ class term, below)   # [N, M]
    j*(i) = argmin_j A[i, j]
    gating: A[i, j*] >= τ                    -> det i starts a new track
    BF:     A[i, j*] is also the min of column j*
    LBF:    (2nd min of row i) - A[i, j*] > γ and (2nd min of column j*) - A[i, j*] > γ
    BF and LBF                              -> det i continues track j*
    otherwise ("doubtful")                  -> det i is dropped (neither matched nor new)

Reading of the paper (documented choices):

- **One pass per frame.** The paper lists gating, BF and LBF as steps applied once to the cost
  matrix of frames t and t+1 ("a fast mitigation of the bad associations"); the released code
  drops the detections left over. So a detection that loses its best track to a closer detection
  is not re-offered its second-best track: it is doubtful and dropped. BF already makes the
  accepted pairs one-to-one (each is the minimum of its column), so no second round is needed
  for consistency.
- **Across frames.** Tracks never expire and keep their last valid mask, so a track missed for
  many frames still competes (with a stale mask) and can make a detection doubtful through LBF;
  a dropped detection leaves every track unchanged.
- **Missing second minimum** (a single track, or a single detection): +inf, so LBF passes on that
  side.
- **Class term.** The paper's cost is "class + mask IoU"; the released code uses mask IoU only.
  Default (paper): ``+ class_weight`` when the detection's label differs from the label of the
  track's last valid detection; with ``class_weight = 1`` such a pair costs >= 1 > τ, i.e. a
  class change is never an association. ``class_weight = 0`` is the released code.
- **LBF margin.** The paper says "greater than a fixed threshold" (strict, the default); the
  released code compares with ``>=`` (``lbf_strict=False``).
- **Ties in Best Friend.** When several detections share the minimum of a column, only the first
  (lowest row index) is that column's best friend, as the released code's column argmin; so a
  track gets at most one detection per frame even with ``lonely_margin = 0``, where LBF would not
  separate the tied rows.
- **Category vote ties** (output). With equal counts the released code
  (``np.bincount(cats).argmax()``) takes the smallest category id; tubelet's rule takes the label
  with the larger summed confidence (then the smaller id). ``vote_tie="auto"`` (default) uses the
  released code's rule when ``class_weight == 0`` (the mode that reproduces that code) and
  tubelet's otherwise; ``"score"`` / ``"smallest_id"`` force one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tubelet.errors import InputError
from tubelet.ops.mask_iou import mask_iou_rle
from tubelet.structures.instances import FrameInstances, VideoInstances
from tubelet.trackers.base import (FrameResult, ScoreGatedTracker, Track, VoteTie,
                                   register_tracker)


@dataclass
class GreedyConfig:
    score_thr: float = 0.6  # detections with confidence >= this enter the tracker
    gate_thr: float = 0.99  # τ: best cost >= τ (mask IoU <= 0.01) starts a new track
    lonely_margin: float = 0.01  # γ of the Lonely Best Friend test
    lbf_strict: bool = True  # paper: margin "greater than" γ; released code: >= (False)
    class_weight: float = 1.0  # cost added when labels differ (paper "class + mask IoU"); 0 = code
    min_valid_frames: int = 3  # output keeps tracks with MORE than this many valid frames
    mean_score_thr: float = 0.6  # output keeps tracks with mean confidence > this
    # category-vote tie rule: auto = smallest_id when class_weight == 0 (released code), else score
    vote_tie: Literal["auto", "score", "smallest_id"] = "auto"

    def __post_init__(self) -> None:
        # InputError, not ValueError: a YAML / key=value typo is reported by the CLI in one line
        if self.vote_tie not in ("auto", "score", "smallest_id"):
            raise InputError(f"expected auto, score or smallest_id, got {self.vote_tie!r}",
                             None, None, "vote_tie")

    @property
    def resolved_vote_tie(self) -> VoteTie:
        """The tie rule ``vote_tie`` stands for (``"auto"`` resolved by ``class_weight``)."""
        if self.vote_tie == "auto":
            return "smallest_id" if self.class_weight == 0 else "score"
        return self.vote_tie


def _second_min(a: np.ndarray, axis: int) -> np.ndarray:
    """Second smallest value along ``axis`` (+inf where there is only one value)."""
    if a.shape[axis] < 2:
        shape = list(a.shape)
        shape.pop(axis)
        return np.full(shape, np.inf)
    return np.partition(a, 1, axis=axis).take(1, axis=axis)


def greedy_associate(cost: np.ndarray, gate_thr: float = 0.99, margin: float = 0.01,
                     strict: bool = True) -> np.ndarray:
    """Gating + Best Friend + Lonely Best Friend on one cost matrix (one pass).

    Args:
        cost: ``[N, M]`` association cost (detections x tracks), lower is better.
        gate_thr: τ; a detection whose best cost is >= τ starts a new track.
        margin: γ of the Lonely Best Friend test; strict: compare the gaps with > (else >=).
    Returns:
        ``[N]`` int64: the matched column, -1 for "start a new track" (gated, or M = 0),
        -2 for "doubtful" (dropped).
    """
    n, m = cost.shape
    out = np.full(n, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return out
    best = cost.argmin(1)  # [N]
    a = cost[np.arange(n), best]  # [N]
    gated = a >= gate_thr
    # best friend: row i is its column's argmin; argmin picks the first of tied rows, so each
    # column has one best friend (one-to-one even when LBF lets ties through, margin 0)
    bf = cost.argmin(0)[best] == np.arange(n)  # [N]
    row_gap = _second_min(cost, 1) - a  # [N]
    col_gap = _second_min(cost, 0)[best] - a  # [N]
    lbf = (row_gap > margin) & (col_gap > margin) if strict else \
        (row_gap >= margin) & (col_gap >= margin)
    out[~gated] = np.where(bf & lbf, best, -2)[~gated]
    return out


@register_tracker("greedy", GreedyConfig)
class GreedyTracker(ScoreGatedTracker):
    """YOLOv4+1seg greedy tracker. Tracks never expire; see the module docstring."""

    cfg: GreedyConfig

    def reset(self) -> None:
        super().reset()
        self.tracks: list[Track] = []

    def cost_matrix(self, rles: list[dict], labels: np.ndarray) -> np.ndarray:
        """``[N, M]`` cost between detections and every track's last valid mask and label."""
        last = [tr.last_mask for tr in self.tracks]
        cost = 1.0 - mask_iou_rle(rles, last)  # [N, M]
        if self.cfg.class_weight and self.tracks:
            track_lab = np.array([tr.labels[-1] for tr in self.tracks])  # [M]
            cost = cost + self.cfg.class_weight * (labels[:, None] != track_lab[None, :])
        return cost

    def _associate(self, frame: FrameInstances, res: FrameResult) -> None:
        t = res.frame_index
        idx = self.entering(frame)  # detections entering the tracker
        rles = frame.rles(idx)
        labels = frame.labels[idx]
        assign = greedy_associate(self.cost_matrix(rles, labels), self.cfg.gate_thr,
                                  self.cfg.lonely_margin, self.cfg.lbf_strict)
        for k, (i, j) in enumerate(zip(idx, assign)):
            if j == -2:  # doubtful
                continue
            if j == -1:
                self.tracks.append(Track(len(self.tracks)))
                j = len(self.tracks) - 1
                res.new[i] = True
            self.tracks[j].add(t, rles[k], frame.scores[i], labels[k])
            res.track_ids[i] = self.tracks[j].track_id

    def finalize(self) -> VideoInstances:
        """Tracks with > ``min_valid_frames`` valid frames and mean confidence > ``mean_score_thr``;
        category = majority vote over frames (ties: ``vote_tie``), score = mean confidence."""
        return self._track_video([tr for tr in self.tracks
                                  if tr.num_valid > self.cfg.min_valid_frames
                                  and float(np.mean(tr.scores)) > self.cfg.mean_score_thr],
                                 self.cfg.resolved_vote_tie)
