"""Speed part of ``bench/sim_reduce_track.py``: category-aware soft-NMS of moving-ellipse
sequences (sequence IoU from RLE included) and one tracker update on a grid of detections."""
from __future__ import annotations

import time

import numpy as np

from tubelet.ops import category_aware_soft_nms, sequence_iou
from tubelet.sim import ellipse_mask, rng_for
from tubelet.sim.noise import STREAM_BENCH
from tubelet.structures import rle as rle_ops
from tubelet.structures.instances import FrameInstances
from tubelet.trackers import build_tracker


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed_soft_nms(n: int, length: int, h: int, w: int, repeats: int, seed: int) -> dict:
    """Sequence IoU (RLE) + category-aware soft-NMS of n moving-ellipse sequences, 40 classes."""
    rng = rng_for(seed, STREAM_BENCH, 0)
    objects = max(n // 3, 1)  # ~3 proposals per object, so the IoUs are not all zero
    base = rng.uniform([0.2 * h, 0.2 * w], [0.8 * h, 0.8 * w], size=(objects, 2))
    vel = rng.normal(0, 0.004 * h, size=(objects, 2))
    obj = rng.integers(objects, size=n)
    jitter = rng.normal(0, 0.01 * h, size=(n, 2))
    axes = rng.uniform(0.05, 0.15, size=(n, 2)) * h
    seqs: list[list[dict]] = [[] for _ in range(n)]
    for t in range(length):
        c = base[obj] + vel[obj] * t + jitter  # [n, 2]
        frame = np.stack([ellipse_mask(h, w, c[i, 0], c[i, 1], axes[i, 0], axes[i, 1], 0.3)
                          for i in range(n)])  # [n, H, W]
        for i, r in enumerate(rle_ops.encode_many(frame)):
            seqs[i].append(r)
    scores = rng.dirichlet(np.full(40, 0.3), size=n)  # [n, 40]
    t_iou = _best(lambda: sequence_iou(seqs), repeats)
    iou = sequence_iou(seqs)
    t_nms = _best(lambda: category_aware_soft_nms(scores, iou), repeats)
    t_all = _best(lambda: category_aware_soft_nms(scores, sequence_iou(seqs)), repeats)
    return {"sequences": n, "frames": length, "height": h, "width": w, "classes": 40,
            "sequence_iou_ms": 1e3 * t_iou, "soft_nms_ms": 1e3 * t_nms, "total_ms": 1e3 * t_all}


def _grid_frame(rows: int, cols: int, h: int, w: int, radius: float, offset: float,
                rng: np.random.Generator, dim: int = 64) -> FrameInstances:
    cy = (np.arange(rows) + 0.5) * h / rows + offset
    cx = (np.arange(cols) + 0.5) * w / cols + offset
    masks = np.stack([ellipse_mask(h, w, y, x, radius, radius, 0.0) for y in cy for x in cx])
    n = len(masks)
    probs = rng.dirichlet(np.ones(10), size=n)  # [n, 10]
    return FrameInstances(masks, rng.uniform(0.65, 0.95, n), probs.argmax(1) + 1,
                          class_probs=probs, embeddings=rng.normal(size=(n, dim)))


def speed_trackers(repeats: int, seed: int) -> dict:
    """One update with 100 detections against 50 live tracks at 192x320 (greedy, memory)."""
    rng = rng_for(seed, STREAM_BENCH, 1)
    h, w = 192, 320
    first = _grid_frame(5, 10, h, w, 9.0, 0.0, rng)  # 50 detections -> 50 tracks
    second = _grid_frame(10, 10, h, w, 5.0, 1.0, rng)  # 100 detections
    out = {}
    for name in ("greedy", "memory"):
        tr = build_tracker(name)
        best = float("inf")
        for _ in range(repeats):
            tr.reset()
            tr.update(first)
            n_tracks = len(tr.tracks)
            t0 = time.perf_counter()
            tr.update(second)
            best = min(best, time.perf_counter() - t0)
        out[name] = {"detections": len(second), "tracks": n_tracks, "update_ms": 1e3 * best}
    return out
