"""Parameters of the YouTube-VIS / OVIS metric and the OVIS occlusion score.

Values follow the official evaluators (``shared/EVAL_NOTES.md``): IoU thresholds 0.50:0.05:0.95 and
101 recall points built with ``np.linspace`` exactly as there (a threshold compared with ``==`` or
``>=`` must be the same float), area ranges with both ends inclusive, maxDets 1/10/100.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tubelet.errors import InputError

# [T] = [10] IoU thresholds and [R] = [101] recall points, as the official code builds them.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)

# Area ranges in pixels (per-track mean area), both ends inclusive.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0 ** 2, 1e5 ** 2), "small": (0 ** 2, 128 ** 2),
    "medium": (128 ** 2, 256 ** 2), "large": (256 ** 2, 1e5 ** 2),
}
# OVIS occlusion ranges of the per-track occlusion score, both ends inclusive.
OCC_RANGES: dict[str, tuple[float, float]] = {
    "light": (0.0, 0.25), "medium": (0.25, 0.5), "heavy": (0.5, 1.0),
}

# Per-frame OVIS occlusion label -> score. The OVIS annotation files spell the labels as strings
# ("no_occlusion", "slight_occlusion", "severe_occlusion"); integer levels 0/1/2 and a few short
# spellings are accepted too. ``None`` (object absent in that frame) is skipped.
OCCLUSION_SCORES: dict[Any, float] = {
    "no_occlusion": 0.0, "slight_occlusion": 0.25, "severe_occlusion": 0.75,
    "no": 0.0, "none": 0.0, "slight": 0.25, "severe": 0.75,
    0: 0.0, 1: 0.25, 2: 0.75,
}


@dataclass(frozen=True)
class EvalParams:
    """What the evaluator computes; the defaults are the official ones."""
    max_dets: tuple[int, ...] = (1, 10, 100)  # per (video, category); AP uses the largest
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS.copy())  # [T]
    recall_thresholds: np.ndarray = field(default_factory=lambda: RECALL_THRESHOLDS.copy())  # [R]

    def __post_init__(self) -> None:
        md = tuple(sorted(int(m) for m in self.max_dets))
        if len(md) != 3 or md[0] < 1:
            raise ValueError(f"max_dets must be three positive ints, got {self.max_dets!r}")
        object.__setattr__(self, "max_dets", md)


def occlusion_score(labels: Sequence[Any] | None, path: str | None = None,
                    record: str | None = None) -> float | None:
    """OVIS per-track occlusion score: mean of the top ``ceil(n/2)`` per-frame scores.

    Args:
        labels: ``[T]`` per-frame labels (see :data:`OCCLUSION_SCORES`), ``None`` where absent.
    Returns:
        The score in [0, 0.75], or None when there are no labels (or all are None) -- such a
        track belongs to no occlusion range (the official code would divide by zero).
    Raises:
        InputError: an unknown label, naming the file, the annotation and the frame.
    """
    if labels is None:
        return None
    scores = []
    for t, lab in enumerate(labels):
        if lab is None:
            continue
        key = lab.lower() if isinstance(lab, str) else lab
        if isinstance(lab, bool) or not isinstance(lab, (str, int)) or key not in OCCLUSION_SCORES:
            raise InputError(f"unknown occlusion label {lab!r} (expected one of 'no_occlusion', "
                             f"'slight_occlusion', 'severe_occlusion' or 0/1/2)",
                             path, record, f"occlusion[{t}]")
        scores.append(OCCLUSION_SCORES[key])
    if not scores:
        return None
    scores.sort()
    top = scores[len(scores) - math.ceil(len(scores) / 2):]  # the top 50 % of frames
    return sum(top) / len(top)
