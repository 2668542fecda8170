"""Learning-rate schedule: linear warm-up, then step decay (detectron2's WarmupMultiStepLR)."""
from __future__ import annotations

import bisect


def lr_factor(step: int, warmup_iters: int, warmup_factor: float, milestones, gamma: float) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based)."""
    f = gamma ** bisect.bisect_right(sorted(milestones), step)
    if step < warmup_iters:
        alpha = step / warmup_iters
        f *= warmup_factor * (1 - alpha) + alpha
    return f
