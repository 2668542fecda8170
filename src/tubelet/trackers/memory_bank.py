"""Memory-bank tracker of the contrastive online method (YouTube-VIS 2022 1st place, Sec. 3.3;
the IDOL-style association of its released code).

Per frame t (detections sorted by score after the pre-association filters)::

    memory embedding of track j:  m_j = sum_k w_k e_k / sum_k w_k over its last L = 3 embeddings,
                                  w_k = score_k + k / L  (temporal weight, newest k = L)
    f = E_det @ [m_tracks; e_backdrops]^T                                   # [N, M + B] dot products
    S = (softmax(f, over tracks) + softmax(f, over detections)) / 2         # bi-softmax
    greedy by detection score: j = argmax_j S[i, j]; match if S[i, j] > 0.5 and j is a track;
                               a matched track's column is zeroed for the other detections
    unmatched: score > 0.2 -> new track; else a "backdrop" if its mask IoU with every
               higher-scoring detection of the frame is < 0.05

Choices (documented):

- **Backdrops.** "Kept but not output" is read as in the QDTrack-style memory the released code
  builds on: a backdrop's embedding joins the bank for the next ``backdrop_frames`` frame(s) as
  an extra *column* of the bi-softmax. It is never a track, never output and never matched (a
  detection whose best column is a backdrop stays unmatched); it only takes probability mass
  away from real tracks, so a detection that looks like background is matched less readily.
- **Deaths.** A track missed in ``max_missed`` consecutive frames (after its last match) is
  closed: no longer a column, no later re-identification; its output is kept.
- **Short tracks.** At a frame t > ``short_after`` (0-based), a live track unmatched at t and
  t - 1 with fewer than ``short_min_valid`` valid frames is deleted (not output).
- **Temporal weights** for a track with n < L embeddings: the newest n of (1/L, ..., 1).
- **Memory** is bounded: L (embedding, score) pairs per live track, the running sum of class
  distributions, and the per-frame RLE masks (the output itself). Closed tracks drop their
  embeddings.
- **Pre-association filters** (Sec. "Inference" of the notes): score > ``score_thr`` (the top
  detection is kept if none passes), class-aware box NMS 0.9 when boxes are given
  (torchvision, suppresses IoU > thr), class-agnostic mask NMS 0.5 (suppresses IoU >= thr).
- **Inputs.** Needs ``embeddings``; ``boxes`` are optional (no box NMS without them) and so are
  ``class_probs`` (without them a detection votes its confidence for its label).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from tubelet.ops.mask_iou import mask_iou_rle
from tubelet.ops.seq_nms import nms_from_iou
from tubelet.structures.instances import FrameInstances, VideoInstances
from tubelet.trackers.base import (ClassScoreSum, FrameResult, Track, Tracker, class_records,
                                   register_tracker)


@dataclass
class MemoryConfig:
    memory_length: int = 3  # L: embeddings per track in the memory bank
    temporal_weight: bool = True  # add k/L to each embedding's weight (newest = 1)
    match_thr: float = 0.5  # match when the best bi-softmax score is > this
    birth_thr: float = 0.2  # unmatched detection with score > this starts a track (OVIS: 0.3)
    backdrop_iou_thr: float = 0.05  # backdrop only if mask IoU < this with all higher-scoring dets
    backdrop_frames: int = 1  # frames a backdrop embedding stays in the bank
    max_missed: int = 10  # a track unmatched for this many consecutive frames is closed
    short_after: int = 8  # short-track deletion applies from frame index > this
    short_min_valid: int = 3  # ... to tracks with fewer valid frames than this
    score_thr: float = 0.1  # pre-filter: keep detections with score > this (top-1 if none)
    box_nms_thr: float = 0.9  # class-aware box NMS before association (if boxes are given)
    mask_nms_thr: float = 0.5  # class-agnostic mask NMS before association (OVIS: 0.3)
    output_thr: float = 0.05  # one output record per (track, class) with probability > this


def bi_softmax(f: np.ndarray) -> np.ndarray:
    """``(softmax over columns + softmax over rows) / 2`` of a ``[N, M]`` similarity matrix."""
    if f.size == 0:
        return np.zeros_like(f, dtype=np.float64)
    f = f.astype(np.float64)
    r = np.exp(f - f.max(1, keepdims=True))
    c = np.exp(f - f.max(0, keepdims=True))
    return (r / r.sum(1, keepdims=True) + c / c.sum(0, keepdims=True)) / 2


def memory_embedding(embeds: np.ndarray, scores: np.ndarray, length: int,
                     temporal: bool = True) -> np.ndarray:
    """Weighted mean of a track's last n <= L embeddings ``[n, D]`` (oldest first) -> ``[D]``.

    Weight of entry k (k = L - n + 1 .. L, newest k = L): ``score_k + k / L`` (``score_k`` alone
    without the temporal weight).
    """
    n = len(embeds)
    w = np.asarray(scores, dtype=np.float64)
    if temporal:
        w = w + np.arange(length - n + 1, length + 1) / length
    if w.sum() <= 0:
        w = np.ones(n)
    return (w[:, None] * embeds).sum(0) / w.sum()


class _MemTrack(Track):
    """A live track: the base record plus its memory bank and class-distribution sum."""

    def __init__(self, track_id: int, memory_length: int):
        super().__init__(track_id)
        self.bank: deque[tuple[np.ndarray, float]] = deque(maxlen=memory_length)
        self.class_sum = ClassScoreSum()  # class scores summed over the matched frames
        self.closed = False


@register_tracker("memory", MemoryConfig)
class MemoryBankTracker(Tracker):
    """Contrastive memory-bank tracker (needs ``FrameInstances.embeddings``)."""

    cfg: MemoryConfig
    requires = frozenset({"embeddings"})  # boxes, class_probs: optional (module docstring)

    def reset(self) -> None:
        super().reset()
        self.tracks: list[_MemTrack] = []  # live and closed, never the deleted ones
        self.next_id = 0
        # one list of [D] embeddings per recent frame
        self.backdrops: deque[list[np.ndarray]] = deque(maxlen=max(self.cfg.backdrop_frames, 1))

    # ------------------------------------------------------------------ filters
    def input_filter(self, scores: np.ndarray) -> np.ndarray:
        """What :meth:`prefilter` can pick: score > ``score_thr``, or the first best if none."""
        keep = scores > self.cfg.score_thr
        if len(scores) and not keep.any():
            keep[int(np.argmax(scores))] = True
        return keep

    def prefilter(self, frame: FrameInstances, iou: np.ndarray) -> np.ndarray:
        """Indices of the detections that enter the association, in descending score order.

        Args:
            iou: ``[N, N]`` mask IoU between the frame's detections.
        """
        n = len(frame)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        idx = np.nonzero(self.input_filter(frame.scores))[0]  # > score_thr, else the top one
        if frame.boxes is not None and len(idx) > 1:
            from torchvision.ops import batched_nms  # lazy: torchvision only when boxes are given
            keep = batched_nms(torch.as_tensor(frame.boxes[idx], dtype=torch.float32),
                               torch.as_tensor(frame.scores[idx], dtype=torch.float32),
                               torch.as_tensor(frame.labels[idx]), self.cfg.box_nms_thr)
            idx = idx[keep.numpy()]
        return idx[nms_from_iou(frame.scores[idx], iou[np.ix_(idx, idx)], self.cfg.mask_nms_thr)]

    # ------------------------------------------------------------------ association
    def live_tracks(self) -> list[_MemTrack]:
        return [tr for tr in self.tracks if not tr.closed]

    def memory(self) -> tuple[list[_MemTrack], np.ndarray]:
        """Live tracks and the bank matrix ``[M + B, D]`` (tracks first, then backdrops)."""
        live = self.live_tracks()
        rows = [memory_embedding(np.stack([e for e, _ in tr.bank]),
                                 np.array([s for _, s in tr.bank]), self.cfg.memory_length,
                                 self.cfg.temporal_weight) for tr in live]
        rows += [e for frame_bd in self.backdrops for e in frame_bd]
        return live, (np.stack(rows) if rows else np.zeros((0, 0)))

    def _add(self, tr: _MemTrack, frame: FrameInstances, t: int, i: int, rle: dict) -> None:
        tr.add(t, rle, frame.scores[i], frame.labels[i])
        tr.bank.append((frame.embeddings[i].copy(), float(frame.scores[i])))
        tr.class_sum.add(frame, i)

    def _associate(self, frame: FrameInstances, res: FrameResult) -> None:
        t = res.frame_index
        cfg = self.cfg
        for tr in self.live_tracks():  # deaths: missed frames last+1 .. t-1
            if t - 1 - tr.last_frame >= cfg.max_missed:
                tr.closed, tr.bank = True, deque()
        rles = frame.rles()
        iou_all = mask_iou_rle(rles, rles)  # [N, N]
        order = self.prefilter(frame, iou_all)  # [n] descending score
        live, bank = self.memory()
        n_live = len(live)
        if len(order) and len(bank):
            sim = bi_softmax(frame.embeddings[order] @ bank.T)  # [n, M + B]
        else:
            sim = np.zeros((len(order), len(bank)))
        ious = iou_all[np.ix_(order, order)]  # [n, n]
        new_backdrops = []
        for k, i in enumerate(order):
            j = int(np.argmax(sim[k])) if sim.shape[1] else -1
            if j >= 0 and sim[k, j] > cfg.match_thr and j < n_live:
                self._add(live[j], frame, t, i, rles[i])
                res.track_ids[i] = live[j].track_id
                sim[:, j] = 0.0  # the track is taken for this frame
            elif frame.scores[i] > cfg.birth_thr:
                tr = _MemTrack(self.next_id, cfg.memory_length)
                self.next_id += 1
                self.tracks.append(tr)
                self._add(tr, frame, t, i, rles[i])
                res.track_ids[i], res.new[i] = tr.track_id, True
            elif k == 0 or ious[k, :k].max() < cfg.backdrop_iou_thr:
                new_backdrops.append(frame.embeddings[i].copy())
        if cfg.backdrop_frames > 0:
            self.backdrops.append(new_backdrops)
        if t > cfg.short_after:  # short-track deletion
            self.tracks = [tr for tr in self.tracks if tr.closed or not (
                tr.last_frame < t - 1 and tr.num_valid < cfg.short_min_valid)]

    def finalize(self) -> VideoInstances:
        """One record per (track, class) with mean class probability over matched frames > 0.05."""
        # every kept track was matched at least once (a track is born matched): num_valid >= 1
        per_track = [(tr, tr.class_sum.mean(tr.num_valid)) for tr in self.tracks]
        return class_records(per_track, self, self.frame_index, self.cfg.output_thr)
