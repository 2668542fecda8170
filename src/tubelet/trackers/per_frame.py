"""The "no association" tracker: every detection is its own one-frame track.

The lower end of the contrastive online paper's association ablation (contrastive memory bank
vs IoU-only association vs none): the detector's per-frame output, with identities never carried
across frames. Per frame, detections with confidence ``>= score_thr`` each start a new track.
Output: with ``class_probs``, one record per (track, class) whose probability is ``> output_thr``
(the memory tracker's rule, whose per-track mean is here a single frame's probabilities);
without, one record per track with its label and confidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tubelet.structures.instances import FrameInstances, VideoInstances
from tubelet.trackers.base import (FrameResult, ScoreGatedTracker, Track, class_records,
                                   detection_class_scores, register_tracker)


@dataclass
class PerFrameConfig:
    score_thr: float = 0.0   # detections with confidence >= this become (one-frame) tracks
    output_thr: float = 0.05  # one record per (track, class) with probability > this


@register_tracker("none", PerFrameConfig)
class PerFrameTracker(ScoreGatedTracker):
    """No association: track id = running detection count (module docstring)."""

    cfg: PerFrameConfig

    def reset(self) -> None:
        super().reset()
        self.tracks: list[tuple[Track, np.ndarray | dict[int, float]]] = []  # (track, classes)

    def _associate(self, frame: FrameInstances, res: FrameResult) -> None:
        t = res.frame_index
        idx = self.entering(frame)
        rles = frame.rles(idx)
        for k, i in enumerate(idx):
            tr = Track(len(self.tracks))
            tr.add(t, rles[k], frame.scores[i], frame.labels[i])
            self.tracks.append((tr, detection_class_scores(frame, int(i))))
            res.track_ids[i], res.new[i] = tr.track_id, True

    def finalize(self) -> VideoInstances:
        return class_records(self.tracks, self, self.frame_index, self.cfg.output_thr)
