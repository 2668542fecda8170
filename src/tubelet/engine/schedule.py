"""Learning-rate schedules: linear warm-up, then step decay (detectron2's WarmupMultiStepLR) or
cosine decay (YOLOv4's recipe), as a multiplier of the base learning rate."""
from __future__ import annotations

import bisect
import math

SCHEDULES = ("multistep", "cosine")


def lr_factor(step: int, warmup_iters: int, warmup_factor: float, milestones, gamma: float,
              schedule: str = "multistep", max_iters: int = 0, min_factor: float = 0.0) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based).

    multistep: ``gamma ** (number of milestones <= step)``.
    cosine: ``min_factor + (1 - min_factor) * (1 + cos(pi * step / max_iters)) / 2`` — 1 at step
    0, ``min_factor`` at ``max_iters``.
    Warm-up (both): times ``warmup_factor * (1 - a) + a`` with ``a = step / warmup_iters`` while
    ``step < warmup_iters``.
    """
    if schedule == "multistep":
        f = gamma ** bisect.bisect_right(sorted(milestones), step)
    elif schedule == "cosine":
        frac = min(step / max(max_iters, 1), 1.0)
        f = min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * frac))
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choices: {SCHEDULES}")
    if step < warmup_iters:
        alpha = step / warmup_iters
        f *= warmup_factor * (1 - alpha) + alpha
    return f
