"""Naive baseline tracker: greedy mask-IoU argmax, no Best Friend / Lonely Best Friend tests.

Per frame, detections in descending score order each take the still-free track whose last valid
mask has the highest IoU with it, if that IoU is > ``iou_thr``; otherwise they start a new track.
Tracks never expire. Output: tracks with more than ``min_valid_frames`` valid frames, category =
majority vote (ties: larger summed confidence), score = mean confidence.
It exists as the reference point the paper trackers are compared against: its defaults equal
the greedy tracker's (confidence 0.6, IoU > 0.01 i.e. ``gate_thr`` = 0.99, more than 3 valid
frames), so the comparison isolates Best Friend / Lonely Best Friend rather than a threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tubelet.ops.mask_iou import mask_iou_rle
from tubelet.structures.instances import FrameInstances, VideoInstances
from tubelet.trackers.base import FrameResult, ScoreGatedTracker, Track, register_tracker


@dataclass
class NaiveConfig:
    score_thr: float = 0.6  # detections with confidence >= this enter the tracker (as greedy)
    iou_thr: float = 0.01  # continue a track only when mask IoU > this (greedy's 1 - gate_thr)
    min_valid_frames: int = 3  # output keeps tracks with MORE than this many valid frames (as greedy)


@register_tracker("naive", NaiveConfig)
class NaiveTracker(ScoreGatedTracker):
    """Greedy IoU-argmax association (the baseline)."""

    cfg: NaiveConfig

    def reset(self) -> None:
        super().reset()
        self.tracks: list[Track] = []

    def _associate(self, frame: FrameInstances, res: FrameResult) -> None:
        t = res.frame_index
        idx = self.entering(frame)
        idx = idx[np.argsort(-frame.scores[idx], kind="stable")]  # descending score
        rles = frame.rles(idx)
        iou = mask_iou_rle(rles, [tr.last_mask for tr in self.tracks])  # [n, M]
        free = np.ones(len(self.tracks), dtype=bool)
        for k, i in enumerate(idx):
            cand = np.where(free, iou[k], -1.0)
            j = int(np.argmax(cand)) if len(cand) else -1
            if j < 0 or cand[j] <= self.cfg.iou_thr:
                self.tracks.append(Track(len(self.tracks)))
                j, res.new[i] = len(self.tracks) - 1, True
            else:
                free[j] = False
            self.tracks[j].add(t, rles[k], frame.scores[i], frame.labels[i])
            res.track_ids[i] = self.tracks[j].track_id

    def finalize(self) -> VideoInstances:
        return self._track_video([tr for tr in self.tracks
                                  if tr.num_valid > self.cfg.min_valid_frames])
