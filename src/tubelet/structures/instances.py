"""Per-frame detections and video-level instances.

Shape vocabulary: N instances, T frames, H x W frame size, C classes, D embedding width.

``FrameInstances`` is what a per-frame segmenter emits and a tracker consumes.
``VideoInstances`` is the one structure for video-level results: every field has length N and
they index together (``vi[vi.scores > 0.5]``), masks are kept per frame as compressed RLE
(``None`` where absent) so a long video never needs a dense ``[N, T, H, W]`` tensor; dense windows
are made on demand with :meth:`VideoInstances.to_dense`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tubelet.structures import rle as rle_ops


def _index(arr: np.ndarray | None, idx) -> np.ndarray | None:
    return None if arr is None else arr[idx]


def _as_index(idx, n: int) -> np.ndarray:
    if isinstance(idx, (int, np.integer)):
        if not -n <= idx < n:
            raise IndexError(f"index {idx} out of range for {n} instances")
        return np.array([idx % n])
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    arr = np.asarray(idx)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean index of shape {arr.shape} for {n} instances")
        return np.nonzero(arr)[0]
    return arr.astype(np.int64).reshape(-1)


@dataclass
class FrameInstances:
    """Detections in one frame.

    Attributes:
        masks: ``[N, H, W]`` bool dense masks.
        scores: ``[N]`` float confidence.
        labels: ``[N]`` int category id (dataset ids, -1 if unknown).
        class_probs: optional ``[N, C]`` per-class probabilities (column c = ``category_ids[c]``).
        embeddings: optional ``[N, D]`` appearance embeddings.
        boxes: optional ``[N, 4]`` (x1, y1, x2, y2) pixels.
        id_probs: optional ``[N, K]`` identity probabilities (IAI).
    """
    masks: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    boxes: np.ndarray | None = None
    id_probs: np.ndarray | None = None
    _rles: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def rles(self, idx=None) -> list[dict]:
        """Compressed RLEs of detections ``idx`` (default all), each mask encoded once per
        frame: the tracker and the frame's output share the work. The dicts are shared: read
        them, do not change them."""
        ix = np.arange(len(self)) if idx is None else _as_index(idx, len(self))
        missing = [i for i in ix.tolist() if i not in self._rles]
        if missing:
            m = self.masks if missing == list(range(len(self))) else self.masks[missing]
            for i, r in zip(missing, rle_ops.encode_many(m)):
                self._rles[i] = r
        return [self._rles[i] for i in ix.tolist()]

    def __post_init__(self):
        self.masks = np.asarray(self.masks, dtype=bool)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(self.scores)
        if self.masks.ndim != 3 or self.masks.shape[0] != n or self.labels.shape[0] != n:
            raise ValueError(f"FrameInstances: masks {self.masks.shape}, scores {self.scores.shape},"
                             f" labels {self.labels.shape} disagree on N")
        for name in ("class_probs", "embeddings", "boxes", "id_probs"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.ndim != 2 or v.shape[0] != n:
                    raise ValueError(f"FrameInstances.{name} has shape {v.shape}, expected [{n}, *]")
                setattr(self, name, v)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.masks.shape[1], self.masks.shape[2]

    def __getitem__(self, idx) -> "FrameInstances":
        ix = _as_index(idx, len(self))
        return FrameInstances(self.masks[ix], self.scores[ix], self.labels[ix],
                              _index(self.class_probs, ix), _index(self.embeddings, ix),
                              _index(self.boxes, ix), _index(self.id_probs, ix))

    @staticmethod
    def empty(height: int, width: int) -> "FrameInstances":
        return FrameInstances(np.zeros((0, height, width), bool), np.zeros(0), np.zeros(0, np.int64))


@dataclass
class VideoInstances:
    """Video-level instances (tracks) of one video.

    Attributes:
        height, width, length: frame size and number of frames T.
        masks: N lists of T entries, each a compressed RLE or ``None`` (absent in that frame).
        scores: ``[N]`` float video-level score.
        labels: ``[N]`` int category id (-1 if class-agnostic / unknown).
        track_ids: ``[N]`` int identity (several records may share one track id, e.g. one
            record per (track, class) pair).
        class_probs: optional ``[N, C]`` category scores.
        embeddings: optional ``[N, D]``.
    """
    height: int
    width: int
    length: int
    masks: list[list[dict | None]] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    track_ids: np.ndarray | None = None
    class_probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.masks)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.track_ids is None:
            self.track_ids = np.arange(n, dtype=np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        for name in ("scores", "labels", "track_ids"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"VideoInstances.{name} has {getattr(self, name).shape[0]} "
                                 f"entries for {n} instances")
        for i, seq in enumerate(self.masks):
            if len(seq) != self.length:
                raise ValueError(f"VideoInstances: instance {i} has {len(seq)} frames, "
                                 f"expected {self.length}")
        for name in ("class_probs", "embeddings"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.ndim != 2 or v.shape[0] != n:
                    raise ValueError(f"VideoInstances.{name} has shape {v.shape}, expected [{n}, *]")
                setattr(self, name, v)

    # ----------------------------------------------------------------- container protocol
    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, idx) -> "VideoInstances":
        ix = _as_index(idx, len(self))
        return VideoInstances(self.height, self.width, self.length,
                              [self.masks[i] for i in ix], self.scores[ix], self.labels[ix],
                              self.track_ids[ix], _index(self.class_probs, ix),
                              _index(self.embeddings, ix))

    @staticmethod
    def cat(parts: Sequence["VideoInstances"]) -> "VideoInstances":
        """Concatenate instances of the same video."""
        if not parts:
            raise ValueError("cat needs at least one VideoInstances")
        h, w, t = parts[0].height, parts[0].width, parts[0].length
        if any((p.height, p.width, p.length) != (h, w, t) for p in parts):
            raise ValueError("cat: parts disagree on video size or length")

        def opt(name):
            vals = [getattr(p, name) for p in parts]
            if all(v is None for v in vals):
                return None
            if any(v is None for v in vals):
                raise ValueError(f"cat: some parts lack {name}")
            return np.concatenate(vals)
        return VideoInstances(h, w, t, [m for p in parts for m in p.masks],
                              np.concatenate([p.scores for p in parts]),
                              np.concatenate([p.labels for p in parts]),
                              np.concatenate([p.track_ids for p in parts]),
                              opt("class_probs"), opt("embeddings"))

    # ----------------------------------------------------------------- conversions
    @staticmethod
    def from_dense(masks: Any, scores: Any, labels: Any, track_ids: Any = None,
                   class_probs: Any = None, embeddings: Any = None) -> "VideoInstances":
        """Build from dense ``[N, T, H, W]`` masks (numpy or torch; > 0.5 or bool is foreground).
        A frame whose mask is empty is stored as ``None``."""
        m = np.asarray(masks.detach().cpu().numpy() if hasattr(masks, "detach") else masks)
        if m.ndim != 4:
            raise ValueError(f"from_dense expects [N, T, H, W], got shape {m.shape}")
        m = m > 0.5 if m.dtype != bool else m
        n, t, h, w = m.shape
        seqs: list[list[dict | None]] = []
        for i in range(n):
            nonempty = m[i].reshape(t, -1).any(axis=1)  # [T]
            rles = rle_ops.encode_many(m[i])
            seqs.append([r if ne else None for r, ne in zip(rles, nonempty)])
        return VideoInstances(h, w, t, seqs, scores, labels, track_ids, class_probs, embeddings)

    def to_dense(self, t0: int = 0, t1: int | None = None) -> np.ndarray:
        """Decode the frame window ``[t0, t1)`` to ``[N, t1 - t0, H, W]`` bool."""
        t1 = self.length if t1 is None else t1
        if not 0 <= t0 <= t1 <= self.length:
            raise IndexError(f"window [{t0}, {t1}) outside a video of {self.length} frames")
        out = np.zeros((len(self), t1 - t0, self.height, self.width), dtype=bool)
        for i, seq in enumerate(self.masks):
            out[i] = rle_ops.decode_many(seq[t0:t1], self.height, self.width)
        return out

    def frame(self, t: int) -> list[dict | None]:
        """The N masks (RLE or None) of frame t."""
        return [seq[t] for seq in self.masks]

    def areas(self) -> np.ndarray:
        """``[N, T]`` foreground pixel counts (0 where absent)."""
        out = np.zeros((len(self), self.length), dtype=np.int64)
        for i, seq in enumerate(self.masks):
            idx = [t for t, r in enumerate(seq) if r is not None]
            if idx:
                out[i, idx] = rle_ops.area([seq[t] for t in idx])
        return out

    def to_results(self, video_id: int) -> list[dict]:
        """YouTube-VIS result records (compressed RLE, ``None`` for absent frames)."""
        recs = []
        for i in range(len(self)):
            recs.append({"video_id": int(video_id), "category_id": int(self.labels[i]),
                         "score": float(self.scores[i]),
                         "segmentations": [None if r is None else dict(r) for r in self.masks[i]]})
        return recs

    @staticmethod
    def from_results(records: Sequence[dict], height: int, width: int,
                     length: int) -> "VideoInstances":
        """Inverse of :meth:`to_results` for the records of one video."""
        return VideoInstances(height, width, length,
                              [[rle_ops.to_rle(s, height, width) for s in r["segmentations"]]
                               for r in records],
                              [r["score"] for r in records], [r["category_id"] for r in records])
