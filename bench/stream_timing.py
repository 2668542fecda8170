"""Shared by the throughput benches (predict_speed.py, peer_speed.py): the synthetic frames they
time on, and the timing of one streamed video."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterable

import numpy as np


def synthetic_frames(height: int, width: int, n: int) -> list[np.ndarray]:
    """``n`` RGB uint8 frames ``[H, W, 3]`` of one synthetic video (bench look, seed 123)."""
    from tubelet.data.synth import generate_video, preset
    cfg = replace(preset("bench"), height=height, width=width, min_frames=n, max_frames=n)
    return [np.ascontiguousarray(f.image) for f in generate_video(cfg, seed=123, index=0)][:n]


def time_stream(outputs: Iterable, warmup: int = 3) -> tuple[int, float]:
    """Consume ``outputs`` (a method's per-frame outputs, produced lazily); the first ``warmup``
    untimed. Returns (frames timed, seconds they took)."""
    stream = iter(outputs)
    for _ in range(warmup):
        next(stream)
    t0 = time.perf_counter()
    n = sum(1 for _ in stream)
    return n, time.perf_counter() - t0
