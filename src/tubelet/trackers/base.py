"""The tracker protocol, the per-track record shared by all trackers, and the tracker registry.

A tracker is an explicit state machine over one video::

    tracker.reset()
    for frame in frames:                      # FrameInstances, in temporal order
        result = tracker.update(frame)        # FrameResult: track id of each detection (-1 dropped)
    video = tracker.finalize()                # VideoInstances: one record per output track/class

A tracker class names the optional ``FrameInstances`` fields it cannot work without in
``requires`` (memory: embeddings, iai: id_probs); :func:`check_tracker` compares them with what a
model provides when the model is built. Per-track class scores accumulate in one
:class:`ClassScoreSum` (memory and IAI trackers).

Shapes: N detections in a frame, T frames, C classes, D embedding width, K identity slots.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Literal, Sequence

import numpy as np

from tubelet.structures.instances import FrameInstances, VideoInstances


@dataclass
class FrameResult:
    """What a tracker decided for the N detections of one frame.

    Attributes:
        frame_index: t, 0-based.
        track_ids: ``[N]`` int64 track id per detection (in the order of the input frame);
            -1 when the detection was dropped (low score, suppressed, doubtful, backdrop, ...).
        new: ``[N]`` bool, True where the detection started a new track.
    """
    frame_index: int
    track_ids: np.ndarray
    new: np.ndarray

    @staticmethod
    def dropped(frame_index: int, n: int) -> "FrameResult":
        return FrameResult(frame_index, np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool))


@dataclass
class Track:
    """One track's history; masks are kept only for the frames where it was matched.

    Attributes:
        track_id: identity, unique within the video.
        masks: frame index -> compressed RLE of the matched detection.
        scores: detection confidence per matched frame (same order as ``frames``).
        labels: detection category id per matched frame.
        frames: matched frame indices, ascending.
    """
    track_id: int
    masks: dict[int, dict] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)

    def add(self, t: int, rle: dict, score: float, label: int) -> None:
        self.masks[t] = rle
        self.scores.append(float(score))
        self.labels.append(int(label))
        self.frames.append(int(t))

    @property
    def last_frame(self) -> int:
        return self.frames[-1] if self.frames else -1

    @property
    def last_mask(self) -> dict | None:
        return self.masks[self.frames[-1]] if self.frames else None

    @property
    def num_valid(self) -> int:
        return len(self.frames)

    def mask_list(self, length: int) -> list[dict | None]:
        """The T per-frame masks (None where unmatched), as :class:`VideoInstances` wants."""
        return [self.masks.get(t) for t in range(length)]


VoteTie = Literal["score", "smallest_id"]


def majority_label(labels: Sequence[int], scores: Sequence[float], tie: VoteTie = "score") -> int:
    """Most frequent label (-1 when there is none).

    Args:
        labels: ``[T']`` category id per matched frame.
        scores: ``[T']`` detection confidence per matched frame.
        tie: rule among labels with the same count: ``"score"``, the larger summed score, then
            the smaller id; ``"smallest_id"``, the smaller id (``np.bincount(labels).argmax()``).
    """
    if tie not in ("score", "smallest_id"):
        raise ValueError(f"tie must be 'score' or 'smallest_id', got {tie!r}")
    if not labels:
        return -1
    count: dict[int, int] = {}
    mass: dict[int, float] = {}
    for lab, s in zip(labels, scores):
        count[lab] = count.get(lab, 0) + 1
        mass[lab] = mass.get(lab, 0.0) + float(s)
    if tie == "smallest_id":
        return min(count, key=lambda lab: (-count[lab], lab))
    return min(count, key=lambda lab: (-count[lab], -mass[lab], lab))


def detection_class_scores(frame: FrameInstances, i: int) -> np.ndarray | dict[int, float]:
    """Class scores of detection ``i``: its ``[C]`` row of ``class_probs``, or, for a frame that
    carries labels only, ``{label: score}`` (all of the detection's confidence on its label)."""
    if frame.class_probs is not None:
        return frame.class_probs[i]
    return {int(frame.labels[i]): float(frame.scores[i])}


class ClassScoreSum:
    """Running sum of one track's class scores over the frames where it was matched.

    The memory tracker averages it over the matched frames, the IAI assigner over all T frames;
    both read :meth:`mean`. Memory stays O(C) per track whatever the video length.
    """

    def __init__(self) -> None:
        self.total: np.ndarray | dict[int, float] | None = None  # [C] or {category: sum}

    def add(self, frame: FrameInstances, i: int) -> None:
        """Add detection ``i`` of ``frame`` (see :func:`detection_class_scores`)."""
        row = detection_class_scores(frame, i)
        # a [C] sum over columns and a {category: score} sum cannot be added without the column
        # ids, so a video must be all one or all the other
        if isinstance(row, dict):
            if isinstance(self.total, np.ndarray):
                raise ValueError("a track got both class_probs and label-only detections")
            total = dict(self.total or {})
            for c, v in row.items():
                total[c] = total.get(c, 0.0) + v
            self.total = total
        else:
            if isinstance(self.total, dict):
                raise ValueError("a track got both class_probs and label-only detections")
            row = np.asarray(row, dtype=np.float64)
            self.total = row.copy() if self.total is None else self.total + row

    def mean(self, count: int) -> np.ndarray | dict[int, float]:
        """The sum divided by ``count`` (``[C]`` or ``{category: mean}``)."""
        if self.total is None:
            return {}
        if isinstance(self.total, dict):
            return {c: v / count for c, v in self.total.items()}
        return self.total / count


class Tracker(ABC):
    """Base class: the per-frame prologue/epilogue, frame bookkeeping and the streaming helper.

    A subclass implements :meth:`_associate` (fill in one frame's :class:`FrameResult`) and
    :meth:`finalize`; :meth:`update` checks the frame size and the required fields, hands over an
    all-dropped result and advances the frame counter, so no tracker repeats that.

    Args:
        cfg: an instance of the tracker's config dataclass (``config_cls``); None: its defaults.
        category_ids: dataset category id of each column of ``FrameInstances.class_probs``
            (C entries); None means column c is category ``c + 1`` (YouTube-VIS ids start at 1).
    """
    name: ClassVar[str] = ""
    config_cls: ClassVar[type | None] = None  # set by :func:`register_tracker`
    # FrameInstances fields the tracker needs beyond masks / scores / labels (checked per frame
    # here, and before any frame by :func:`check_tracker`)
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, cfg: Any = None, category_ids: Sequence[int] | None = None):
        if cfg is None:
            if self.config_cls is None:
                raise TypeError(f"{type(self).__name__} is not registered: pass a config")
            cfg = self.config_cls()
        elif self.config_cls is not None and not isinstance(cfg, self.config_cls):
            raise TypeError(f"tracker {self.name!r} needs a {self.config_cls.__name__}, "
                            f"got {type(cfg).__name__}")
        self.cfg = cfg
        self.category_ids = None if category_ids is None else [int(c) for c in category_ids]
        self.reset()

    def reset(self) -> None:
        """Forget everything; the next :meth:`update` is frame 0 of a new video."""
        self.frame_index = 0
        self.height: int | None = None
        self.width: int | None = None

    def update(self, frame: FrameInstances) -> FrameResult:
        """Associate the N detections of the next frame; returns their track ids (``[N]``)."""
        h, w = frame.image_size
        if self.height is None:
            self.height, self.width = h, w
        elif (h, w) != (self.height, self.width):
            raise ValueError(f"frame {self.frame_index} is {h}x{w}, earlier frames "
                             f"{self.height}x{self.width}")
        if len(frame):  # an empty frame carries no optional fields, and needs none
            for fld in sorted(self.requires):
                if getattr(frame, fld) is None:
                    raise ValueError(f"the {self.name or type(self).__name__} tracker needs "
                                     f"FrameInstances.{fld}")
        res = FrameResult.dropped(self.frame_index, len(frame))
        self._associate(frame, res)
        self.frame_index += 1
        return res

    def input_filter(self, scores: np.ndarray) -> np.ndarray:
        """bool ``[N]``: the detections of a frame (by score) that :meth:`update` may use. The
        others can be left out of the frame before :meth:`update` without changing any result,
        so a detector need not compute their masks. Default: all of them."""
        return np.ones(len(scores), dtype=bool)

    @abstractmethod
    def _associate(self, frame: FrameInstances, res: FrameResult) -> None:
        """One frame (t = ``res.frame_index``, also for N = 0): set ``res.track_ids`` / ``res.new``
        in place for the detections it keeps; the others stay -1 (dropped)."""

    def category_of(self, column: int) -> int:
        """Dataset category id of class column ``column``."""
        if self.category_ids is None:
            return int(column) + 1
        return self.category_ids[column]

    def _empty_video(self) -> VideoInstances:
        return VideoInstances(self.height or 0, self.width or 0, self.frame_index)

    def _track_video(self, keep: Sequence[Track], tie: VoteTie = "score") -> VideoInstances:
        """One record per kept track: score = mean confidence, category = majority vote
        (``tie``: see :func:`majority_label`)."""
        if not keep:
            return self._empty_video()
        length = self.frame_index
        return VideoInstances(self.height, self.width, length,
                              [tr.mask_list(length) for tr in keep],
                              [float(np.mean(tr.scores)) for tr in keep],
                              [majority_label(tr.labels, tr.scores, tie) for tr in keep],
                              [tr.track_id for tr in keep])

    @abstractmethod
    def finalize(self) -> VideoInstances:
        """Video-level output for the frames seen so far (does not reset the state)."""

    def track_video(self, frames: Iterable[FrameInstances]) -> VideoInstances:
        """Reset, update with every frame, finalize."""
        self.reset()
        for f in frames:
            self.update(f)
        return self.finalize()


def class_records(per_track: Iterable[tuple[Track, np.ndarray | dict[int, float]]],
                  tracker: Tracker, length: int, threshold: float,
                  top_k: int | None = None) -> VideoInstances:
    """One output record per (track, class) whose probability is ``> threshold``.

    Args:
        per_track: (track, class scores) pairs; scores are a ``[C]`` vector over class columns
            or a ``{category_id: score}`` dict (trackers fed labels instead of distributions).
        length: T.
        top_k: keep only the best ``top_k`` records (by score) when given.
    """
    recs: list[tuple[float, int, int, Track]] = []  # (score, category, track id, track)
    for track, probs in per_track:
        items = probs.items() if isinstance(probs, dict) else \
            ((tracker.category_of(c), p) for c, p in enumerate(np.asarray(probs)))
        for cat, p in items:
            if p > threshold:
                recs.append((float(p), int(cat), track.track_id, track))
    recs.sort(key=lambda r: (-r[0], r[2], r[1]))
    if top_k is not None:
        recs = recs[:top_k]
    if not recs:
        return VideoInstances(tracker.height or 0, tracker.width or 0, length)
    return VideoInstances(tracker.height, tracker.width, length,
                          [r[3].mask_list(length) for r in recs], [r[0] for r in recs],
                          [r[1] for r in recs], [r[2] for r in recs])


# ---------------------------------------------------------------------------------- registry
class ScoreGatedTracker(Tracker):
    """A tracker whose detections enter only with score >= ``cfg.score_thr`` (greedy, naive,
    none): :meth:`input_filter` is the gate and :meth:`entering` applies it, so the filter a
    detector may apply early and the one the association applies are one rule."""

    def input_filter(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.cfg.score_thr

    def entering(self, frame: FrameInstances) -> np.ndarray:
        """Indices of the frame's detections that pass the gate, in frame order."""
        return np.nonzero(self.input_filter(frame.scores))[0]


_TRACKERS: dict[str, type[Tracker]] = {}  # name -> tracker class (its config: cls.config_cls)


def register_tracker(name: str, config_cls: type) -> Callable[[type[Tracker]], type[Tracker]]:
    """Class decorator adding a tracker (and its config dataclass) to the registry; a duplicate
    name is an error."""
    def deco(cls: type[Tracker]) -> type[Tracker]:
        if name in _TRACKERS:
            raise ValueError(f"tracker {name!r} is already registered")
        cls.name = name
        cls.config_cls = config_cls
        _TRACKERS[name] = cls
        return cls
    return deco


def list_trackers() -> list[str]:
    return sorted(_TRACKERS)


def _tracker_class(name: str) -> type[Tracker]:
    if name not in _TRACKERS:
        raise ValueError(f"unknown tracker {name!r}; known: {list_trackers()}")
    return _TRACKERS[name]


def tracker_config_class(name: str) -> type:
    """The config dataclass of tracker ``name`` (``ValueError`` for an unknown name)."""
    return _tracker_class(name).config_cls


def check_tracker(name: str, provides: set[str] | frozenset[str]) -> None:
    """Fail early (when a model is built, not at its first frame) if tracker ``name`` is unknown
    or needs a :class:`FrameInstances` field the model does not fill.

    Args:
        name: a registered tracker name.
        provides: the optional ``FrameInstances`` fields the model fills, e.g.
            ``{"class_probs", "embeddings"}`` (masks / scores / labels are always there).
    Raises:
        ValueError: naming the known trackers, or the missing field(s) and the trackers that the
            model can feed.
    """
    cls = _tracker_class(name)
    missing = sorted(cls.requires - set(provides))
    if missing:
        fits = [n for n in list_trackers() if _TRACKERS[n].requires <= set(provides)]
        raise ValueError(f"tracker {name!r} needs FrameInstances field(s) {missing}, which the "
                         f"model does not provide (it provides {sorted(provides)}); trackers it "
                         f"can feed: {fits}")


def build_tracker(name: str, cfg: Any = None, *, category_ids: Sequence[int] | None = None,
                  **overrides: Any) -> Tracker:
    """Build a registered tracker: ``build_tracker("greedy", gate_thr=0.9)``.

    Args:
        name: "greedy", "memory", "iai" or "naive" (``ValueError`` otherwise).
        cfg: a config instance of that tracker (default: the paper defaults; another config
            class is a ``TypeError``).
        category_ids: dataset id of each ``class_probs`` column (see :class:`Tracker`).
        overrides: config fields to change; an unknown field raises ``ValueError``.
    """
    cls = _tracker_class(name)
    cfg_cls = cls.config_cls
    cfg = cfg_cls() if cfg is None else cfg
    if not isinstance(cfg, cfg_cls):
        raise TypeError(f"tracker {name!r} needs a {cfg_cls.__name__}, got {type(cfg).__name__}")
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown {cfg_cls.__name__} field(s) {unknown}; known: {sorted(names)}")
    return cls(dataclasses.replace(cfg, **overrides), category_ids=category_ids)
