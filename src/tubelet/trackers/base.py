"""The tracker protocol, the per-track record shared by all trackers, and the tracker registry.

A tracker is an explicit state machine over one video::

    tracker.reset()
    for frame in frames:                      # FrameInstances, in temporal order
        result = tracker.update(frame)        # FrameResult: track id of each detection (-1 dropped)
    video = tracker.finalize()                # VideoInstances: one record per output track/class

Shapes: N detections in a frame, T frames, C classes, D embedding width, K identity slots.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

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


def majority_label(labels: Sequence[int], scores: Sequence[float]) -> int:
    """Most frequent label; ties go to the larger summed score, then to the smaller id."""
    if not labels:
        return -1
    count: dict[int, int] = {}
    mass: dict[int, float] = {}
    for lab, s in zip(labels, scores):
        count[lab] = count.get(lab, 0) + 1
        mass[lab] = mass.get(lab, 0.0) + float(s)
    return min(count, key=lambda lab: (-count[lab], -mass[lab], lab))


class Tracker(ABC):
    """Base class: frame size / index bookkeeping and the streaming helper.

    Args:
        category_ids: dataset category id of each column of ``FrameInstances.class_probs``
            (C entries); None means column c is category ``c + 1`` (YouTube-VIS ids start at 1).
    """
    name: str = ""

    def __init__(self, category_ids: Sequence[int] | None = None):
        self.category_ids = None if category_ids is None else [int(c) for c in category_ids]
        self.reset()

    def reset(self) -> None:
        """Forget everything; the next :meth:`update` is frame 0 of a new video."""
        self.frame_index = 0
        self.height: int | None = None
        self.width: int | None = None

    def _begin_frame(self, frame: FrameInstances) -> int:
        """Check the frame size and return t (the index of this frame)."""
        h, w = frame.image_size
        if self.height is None:
            self.height, self.width = h, w
        elif (h, w) != (self.height, self.width):
            raise ValueError(f"frame {self.frame_index} is {h}x{w}, earlier frames "
                             f"{self.height}x{self.width}")
        return self.frame_index

    def _end_frame(self) -> None:
        self.frame_index += 1

    def category_of(self, column: int) -> int:
        """Dataset category id of class column ``column``."""
        if self.category_ids is None:
            return int(column) + 1
        return self.category_ids[column]

    def _empty_video(self) -> VideoInstances:
        return VideoInstances(self.height or 0, self.width or 0, self.frame_index)

    @abstractmethod
    def update(self, frame: FrameInstances) -> FrameResult:
        """Associate the detections of the next frame."""

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
_TRACKERS: dict[str, tuple[type, type]] = {}  # name -> (tracker class, config class)


def register_tracker(name: str, config_cls: type) -> Callable[[type], type]:
    """Class decorator adding a tracker to the registry; a duplicate name is an error."""
    def deco(cls: type) -> type:
        if name in _TRACKERS:
            raise ValueError(f"tracker {name!r} is already registered")
        cls.name = name
        _TRACKERS[name] = (cls, config_cls)
        return cls
    return deco


def list_trackers() -> list[str]:
    return sorted(_TRACKERS)


def tracker_config_class(name: str) -> type:
    if name not in _TRACKERS:
        raise KeyError(f"unknown tracker {name!r}; known: {list_trackers()}")
    return _TRACKERS[name][1]


def build_tracker(name: str, cfg: Any = None, *, category_ids: Sequence[int] | None = None,
                  **overrides: Any) -> Tracker:
    """Build a registered tracker: ``build_tracker("greedy", gate=0.9)``.

    Args:
        name: "greedy", "memory", "iai" or "naive".
        cfg: a config instance of that tracker (default: the paper defaults).
        category_ids: dataset id of each ``class_probs`` column (see :class:`Tracker`).
        overrides: config fields to change; an unknown field raises ``ValueError``.
    """
    cls, cfg_cls = _TRACKERS[name] if name in _TRACKERS else (None, None)
    if cls is None:
        raise KeyError(f"unknown tracker {name!r}; known: {list_trackers()}")
    cfg = cfg_cls() if cfg is None else cfg
    if not isinstance(cfg, cfg_cls):
        raise TypeError(f"tracker {name!r} needs a {cfg_cls.__name__}, got {type(cfg).__name__}")
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown {cfg_cls.__name__} field(s) {unknown}; known: {sorted(names)}")
    return cls(dataclasses.replace(cfg, **overrides), category_ids=category_ids)
