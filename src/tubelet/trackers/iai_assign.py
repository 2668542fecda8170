"""Identity assignment of IAI, Instance As Identity (Sec. "Post Processing for Inference").

The ID head predicts, per detection, probabilities over K identity slots: slots 0..K-2 are
instances seen before, slot K-1 means "new" (K = 20 on YouTube-VIS 2019, 25 on 2021 / OVIS).
IDs must be unique within a frame, so they are assigned with the Hungarian algorithm::

    cost = -[P[:, 0..K-2] | P[:, K-1] repeated N times]                    # [N, K - 1 + N]
    (rows, cols) = hungarian(cost)                                        # tubelet.ops

The "new" column is replicated so several detections can be new in one frame. A detection
assigned to a slot that no instance holds yet (slot >= S, the number of IDs handed out) is new
as well. A new detection gets ID S and S += 1, in the order of the input (the method's rank
order); once S = K - 1 (IDs 0..K-2 all used) later newcomers are discarded, the paper's rule
("we assume there could not be more new instances in the video"). Duplicates cannot come out of
a Hungarian assignment over distinct ID columns; the code still guards against them.

Newcomer gate (a tubelet option, ``new_thr``; 0 = the paper): a newcomer whose class confidence
(max of ``class_probs``, else its score) is below ``new_thr`` gets no ID and is dropped. The ID
head calls every candidate its memory does not know "new", so without a gate weak false
positives can take all K-1 IDs early and the objects that enter later are discarded.

Video output: per ID, the class probability (the method passes class x centerness in
``class_probs``) summed over the frames where the ID appears and divided by T (frames without
the ID count as 0); the top 10 (ID, class) pairs with score > 0.05. Without ``class_probs`` a
detection counts its confidence for its label (:func:`.base.detection_class_scores`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tubelet.ops.hungarian import hungarian
from tubelet.structures.instances import FrameInstances, VideoInstances
from tubelet.trackers.base import (ClassScoreSum, FrameResult, Track, Tracker, class_records,
                                   detection_class_scores, register_tracker)


@dataclass
class IAIConfig:
    num_ids: int | None = None  # K incl. the "new" slot; None: the width of id_probs (20 / 25)
    top_k: int = 10  # (ID, class) pairs kept per video
    output_thr: float = 0.05  # ... with score > this
    # a newcomer gets an ID only if its class confidence (max of class_probs, i.e. class
    # probability x centerness for iai-condinst) is >= this; below, it is dropped and its pixels
    # stay background in the memory. 0 = the paper (every newcomer gets an ID while IDs last).
    new_thr: float = 0.0


def assign_ids(id_probs: np.ndarray, num_assigned: int) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian identity assignment of one frame.

    Args:
        id_probs: ``[N, K]`` ID probabilities; column K-1 = "new".
        num_assigned: S, how many IDs (0..S-1) exist before this frame.
    Returns:
        ``(ids [N] int64, new [N] bool)``: the existing ID of each detection, or -1 with
        ``new`` True when it is a newcomer (the caller hands out the new IDs).
    """
    p = np.asarray(id_probs, dtype=np.float64)
    n, k = p.shape
    ids = np.full(n, -1, dtype=np.int64)
    new = np.zeros(n, dtype=bool)
    if n == 0:
        return ids, new
    if k < 2:
        raise ValueError(f"id_probs needs at least 2 columns (one ID and 'new'), got {k}")
    cost = -np.concatenate([p[:, :k - 1], np.repeat(p[:, k - 1:], n, axis=1)], axis=1)
    rows, cols = hungarian(cost)  # every row is assigned (K - 1 + N columns >= N rows)
    used: set[int] = set()
    for r, c in zip(rows, cols):
        if c < min(num_assigned, k - 1) and c not in used:
            ids[r] = c
            used.add(int(c))
        else:  # the "new" column, an ID nobody holds yet, or a duplicate
            new[r] = True
    return ids, new


def _confidence(frame: FrameInstances, i: int) -> float:
    """Detection ``i``'s class confidence: the largest of its class scores
    (:func:`.base.detection_class_scores`: its ``class_probs`` row, or its score on its label)."""
    scores = detection_class_scores(frame, i)
    return float(max(scores.values()) if isinstance(scores, dict) else np.max(scores))


@register_tracker("iai", IAIConfig)
class IAIAssigner(Tracker):
    """IAI identity assigner over ``FrameInstances.id_probs`` ``[N, K]``."""

    cfg: IAIConfig
    requires = frozenset({"id_probs"})  # class_probs optional: label-only frames vote their score

    def reset(self) -> None:
        super().reset()
        self.tracks: dict[int, Track] = {}  # ID -> record
        self.class_sums: dict[int, ClassScoreSum] = {}  # ID -> class scores summed over frames
        self.num_ids = self.cfg.num_ids

    @property
    def num_assigned(self) -> int:
        """S: IDs handed out so far (the next new ID)."""
        return len(self.tracks)

    def _associate(self, frame: FrameInstances, res: FrameResult) -> None:
        t = res.frame_index
        if len(frame) == 0:
            return
        k = frame.id_probs.shape[1]
        if self.num_ids is None:
            self.num_ids = k
        if k != self.num_ids:
            raise ValueError(f"id_probs has {k} columns, expected K = {self.num_ids}")
        ids, new = assign_ids(frame.id_probs, self.num_assigned)
        rles = frame.rles()
        for i in range(len(frame)):
            tid = int(ids[i])
            if new[i]:
                if self.num_assigned >= k - 1:
                    continue  # every ID 0..K-2 is taken: discard the newcomer
                if self.cfg.new_thr > 0 and _confidence(frame, i) < self.cfg.new_thr:
                    continue  # too weak to open an identity (option; the paper has no gate)
                tid = self.num_assigned
                self.tracks[tid] = Track(tid)
                self.class_sums[tid] = ClassScoreSum()
                res.new[i] = True
            self.tracks[tid].add(t, rles[i], frame.scores[i], frame.labels[i])
            res.track_ids[i] = tid
            self.class_sums[tid].add(frame, i)

    def finalize(self) -> VideoInstances:
        """Top ``top_k`` (ID, class) pairs of the class probability averaged over all T frames."""
        length = self.frame_index
        per_track = [(tr, self.class_sums[tid].mean(length)) for tid, tr in self.tracks.items()]
        return class_records(per_track, self, length, self.cfg.output_thr, self.cfg.top_k)
