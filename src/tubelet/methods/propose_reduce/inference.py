"""The model-free half of Propose-Reduce inference: sequence proposals held as RLE, their scores,
the reduction to output records and the per-frame outputs.

Shapes: N sequence proposals, T frames, C foreground classes; class distributions carry the
background in column 0 (``[N, C + 1]``), as :func:`tubelet.ops.sequence_scores` does.

Memory: a proposal is T RLEs (``None`` where empty) plus a running sum of its per-frame class
distributions and a count of its non-empty frames — nothing dense per frame, so the whole video's
proposals cost O(N T) small RLE strings, never ``[N, T, H, W]``.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from tubelet.methods.base import FrameOutput
from tubelet.ops.reduce import ReduceConfig, reduce_sequences
from tubelet.ops.seq_iou import sequence_iou
from tubelet.ops.seq_nms import sequence_scores
from tubelet.structures import VideoInstances


class SequenceProposals:
    """Sequence proposals of one video, filled frame by frame during propagation.

    Attributes:
        masks: N lists of T entries, a compressed RLE at the original frame size or ``None``.
        prob_sum: ``[N, C + 1]`` sum of the box-head distributions over the non-empty frames.
        count: ``[N]`` number of non-empty frames.
        key_of: N ints, the key frame each sequence was proposed from (-1 = not given).
    """

    def __init__(self, length: int, num_classes: int):
        self.length, self.num_classes = int(length), int(num_classes)
        self.masks: list[list[dict | None]] = []
        self.prob_sum = np.zeros((0, num_classes + 1), np.float64)
        self.count = np.zeros(0, np.int64)
        self.key_of: list[int] = []

    def __len__(self) -> int:
        return len(self.masks)

    def add(self, num: int, key: int = -1) -> int:
        """Open ``num`` new (empty) sequences proposed from key frame ``key``; returns the index
        of the first."""
        start = len(self.masks)
        self.masks += [[None] * self.length for _ in range(num)]
        self.key_of += [int(key)] * num
        self.prob_sum = np.concatenate([self.prob_sum, np.zeros((num, self.num_classes + 1))])
        self.count = np.concatenate([self.count, np.zeros(num, np.int64)])
        return start

    def set_frame(self, first: int, t: int, rles: list[dict | None], probs: np.ndarray,
                  nonempty: np.ndarray) -> None:
        """Record frame ``t`` of sequences ``first .. first + K - 1``.

        Args:
            rles: K RLEs (``None`` = empty at the original size).
            probs: ``[K, C + 1]`` box-head class distributions (rows of empty masks ignored).
            nonempty: ``[K]`` bool, whether the mask counts as non-empty for the score (the
                propagated mask at test size, as in the released code).
        """
        k = len(rles)
        for j, r in enumerate(rles):
            self.masks[first + j][t] = r
        ne = np.asarray(nonempty, bool).reshape(k)
        self.prob_sum[first:first + k] += np.asarray(probs, np.float64).reshape(k, -1) * ne[:, None]
        self.count[first:first + k] += ne

    def from_keys(self, keys: list[int]) -> "SequenceProposals":
        """The sequences proposed from the key frames ``keys``, in their order here (shared
        mask lists: read-only)."""
        wanted = set(int(k) for k in keys)
        idx = [i for i, k in enumerate(self.key_of) if k in wanted]
        out = SequenceProposals(self.length, self.num_classes)
        out.masks = [self.masks[i] for i in idx]
        out.prob_sum, out.count = self.prob_sum[idx], self.count[idx]
        out.key_of = [self.key_of[i] for i in idx]
        return out

    def class_scores(self) -> np.ndarray:
        """``[N, C + 1]`` sequence score (Eq. 1 of the 2021 paper, notes §1): the mean class
        distribution over the non-empty frames; never non-empty = background 1.

        The running sums are the T-frame sum already, so :func:`sequence_scores` sees them as one
        "frame" holding the mean — the same rule, without keeping ``[N, T, C + 1]``.
        """
        mean = self.prob_sum / np.maximum(self.count, 1)[:, None]  # [N, C + 1]
        return sequence_scores(mean[:, None], (self.count > 0)[:, None]).category


def reduce_to_instances(props: SequenceProposals, cfg: ReduceConfig, category_ids: np.ndarray,
                        height: int, width: int) -> VideoInstances:
    """Reduce the proposals (:func:`tubelet.ops.reduce_sequences`) to one record per
    (sequence, class): mask sequence of the proposal, the (decayed) score, the class's dataset
    id; ``track_ids`` = proposal index (several classes of one proposal share it). Records are in
    descending score order; ``class_probs`` holds each record's sequence class scores ``[N, C]``.
    """
    n_len = props.length
    if len(props) == 0:
        return VideoInstances(height, width, n_len)
    scores = props.class_scores()[:, 1:]  # [N, C] foreground columns
    iou = sequence_iou(props.masks)  # [N, N] sequence IoU (Eq. 2), on the RLEs
    recs = reduce_sequences(scores, iou, cfg=cfg)
    if not recs:
        return VideoInstances(height, width, n_len)
    idx = [r.index for r in recs]
    return VideoInstances(height, width, n_len, [props.masks[i] for i in idx],
                          [r.score for r in recs], [int(category_ids[r.klass]) for r in recs],
                          idx, scores[idx])


def frame_outputs(result: VideoInstances) -> Iterator[FrameOutput]:
    """One :class:`FrameOutput` per frame of ``result``: the records present in that frame."""
    for t in range(result.length):
        keep = [i for i in range(len(result)) if result.masks[i][t] is not None]
        yield FrameOutput(t, [result.masks[i][t] for i in keep],
                          result.track_ids[keep].astype(np.int64),
                          result.scores[keep].astype(np.float64),
                          result.labels[keep].astype(np.int64))
