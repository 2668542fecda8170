"""Time the YouTube-VIS evaluator on a synthetic set the size of YouTube-VIS 2019 val.

    python bench/eval_speed.py [--videos 302] [--seed 0] [--distinct-masks] [--json-roundtrip]

Generates, in memory, ``--videos`` videos of 20..36 frames at 720x1280 with ~2 ground-truth tracks
each (40 categories) and ~43 result records per video. Masks are moving ellipses built directly as
run-length counts (one run per image column), never as dense ``[H, W]`` arrays, so the RLE strings
have realistic lengths (hundreds of characters) and generation takes seconds.

Result records imitate multi-class VIS output (one record per (track, class) pair, as emitted by
Mask2Former-style or category-aware methods): ~11 mask tracks per video, each reported under 1..7
categories with the same masks. ``--distinct-masks`` gives every record its own masks instead
(the worst case for the evaluator, which otherwise parses a shared mask once).

Times load+validate (``load_results``) and ``evaluate()`` separately, best of ``--repeat``, and
prints one JSON object. ``bench/eval_cli_speed.py`` times ``tubelet eval`` end to end on the same
set written to JSON files (process start to exit, JSON parsing included).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from pycocotools import mask as mask_utils

H, W = 720, 1280
NUM_CATEGORIES = 40


def ellipse_track_rles(cx: np.ndarray, cy: np.ndarray, rx: np.ndarray, ry: np.ndarray,
                       present: np.ndarray, height: int = H, width: int = W) -> list[dict | None]:
    """Compressed RLEs of one ellipse track, built column by column without dense masks.

    Args:
        cx, cy, rx, ry: ``[T]`` centre and radii in pixels per frame (``ry < 0.4 * height`` so two
            neighbouring columns never touch across the image border).
        present: ``[T]`` bool; absent frames are None.
    Returns:
        T entries: ``{"size": [H, W], "counts": str}`` or None.
    """
    T = len(cx)
    x0 = np.clip(np.ceil(cx - rx), 0, width - 1).astype(np.int64)   # [T]
    x1 = np.clip(np.floor(cx + rx), 0, width - 1).astype(np.int64)  # [T]
    n = np.where(present, np.maximum(x1 - x0 + 1, 0), 0)            # [T] columns per frame
    total = int(n.sum())
    fr = np.repeat(np.arange(T), n)                                   # [total] frame of column
    first = np.cumsum(n) - n
    xs = np.arange(total) - np.repeat(first, n) + np.repeat(x0, n)   # [total] column index
    dx = (xs + 0.5 - cx[fr]) / rx[fr]
    half = ry[fr] * np.sqrt(np.clip(1.0 - dx * dx, 0.0, None))
    y0 = np.clip(np.round(cy[fr] - half), 0, height).astype(np.int64)
    y1 = np.clip(np.round(cy[fr] + half), 0, height).astype(np.int64)
    keep = y1 > y0
    fr, xs, y0, y1 = fr[keep], xs[keep], y0[keep], y1[keep]
    n = np.bincount(fr, minlength=T)
    b = np.empty(2 * len(xs), dtype=np.int64)                        # run boundaries, column-major
    b[0::2] = xs * height + y0
    b[1::2] = xs * height + y1
    c = np.empty_like(b)
    c[0:1] = b[0:1]
    c[1:] = b[1:] - b[:-1]
    starts = 2 * (np.cumsum(n) - n)
    nonempty = starts[n > 0]
    c[nonempty] = b[nonempty]                                         # first run of each frame
    hw = height * width
    objs, where = [], []
    for t in range(T):
        if not present[t]:
            continue
        s, e = starts[t], starts[t] + 2 * n[t]
        if e == s:
            counts = np.array([hw], dtype=np.uint32)
        else:
            counts = np.concatenate([c[s:e], [hw - b[e - 1]]]).astype(np.uint32)
            if counts[-1] == 0:
                counts = counts[:-1]
        objs.append({"size": [height, width], "counts": counts})
        where.append(t)
    out: list[dict | None] = [None] * T
    for t, r in zip(where, mask_utils.frPyObjects(objs, height, width) if objs else []):
        out[t] = {"size": [height, width], "counts": r["counts"].decode("ascii")}
    return out


def random_motion(rng: np.random.Generator, T: int, area: float) -> tuple[np.ndarray, ...]:
    """Centre and radii ``[T]`` of an ellipse of about ``area`` px moving linearly."""
    aspect = rng.uniform(0.5, 2.0)
    r = np.sqrt(area / np.pi)
    rx0, ry0 = r * np.sqrt(aspect), r / np.sqrt(aspect)
    ry0 = min(ry0, 0.38 * H)
    rx0 = min(rx0, 0.45 * W)
    cx0, cy0 = rng.uniform(0.1 * W, 0.9 * W), rng.uniform(0.15 * H, 0.85 * H)
    vx, vy = rng.normal(0, 4, 2)
    grow = rng.uniform(-0.01, 0.01)
    t = np.arange(T)
    scale = np.clip(1 + grow * t, 0.5, 1.5)
    rx, ry = np.maximum(rx0 * scale, 2.0), np.clip(ry0 * scale, 2.0, 0.39 * H)
    return cx0 + vx * t, cy0 + vy * t, rx, ry


def present_mask(rng: np.random.Generator, T: int, p_gap: float) -> np.ndarray:
    """``[T]`` bool: present frames, with a random absent head/tail with probability ``p_gap``."""
    present = np.ones(T, dtype=bool)
    if rng.random() < p_gap:
        a = rng.integers(0, T // 3)
        b = rng.integers(0, T // 3)
        present[:a] = False
        present[T - b:] = False
        if not present.any():
            present[T // 2] = True
    return present


def make_dataset(num_videos: int = 302, seed: int = 0, distinct_masks: bool = False
                 ) -> tuple[dict, list[dict]]:
    """A YouTube-VIS-style GT dict and a results list (compressed RLE) of YTVIS-2019-val size."""
    rng = np.random.default_rng(seed)
    videos, anns, results = [], [], []
    for vid in range(1, num_videos + 1):
        T = int(rng.integers(20, 37))
        videos.append({"id": vid, "width": W, "height": H, "length": T,
                       "file_names": [f"v{vid:04d}/{t:05d}.jpg" for t in range(T)]})
        gts = []
        for _ in range(int(rng.choice([1, 2, 2, 3]))):
            area = float(np.exp(rng.uniform(np.log(24 ** 2), np.log(420 ** 2))))
            motion = random_motion(rng, T, area)
            present = present_mask(rng, T, 0.3)
            segs = ellipse_track_rles(*motion, present)
            cat = int(rng.integers(1, NUM_CATEGORIES + 1))
            areas = [None if s is None else float(mask_utils.area(s)) for s in segs]
            anns.append({"id": len(anns) + 1, "video_id": vid, "category_id": cat,
                         "segmentations": segs, "areas": areas, "iscrowd": 0})
            gts.append((cat, motion, present))
        tracks = []  # (masks, [categories]) with the GT category first for true positives
        for cat, (cx, cy, rx, ry), present in gts:
            for _ in range(int(rng.integers(1, 3))):
                j = rng.normal(0, 0.08, 4)
                motion = (cx + j[0] * rx, cy + j[1] * ry, rx * (1 + j[2]),
                          np.minimum(ry * (1 + j[3]), 0.39 * H))
                pres = present & present_mask(rng, T, 0.2)
                tracks.append((motion, pres, [cat]))
        while len(tracks) < 11:
            area = float(np.exp(rng.uniform(np.log(24 ** 2), np.log(420 ** 2))))
            tracks.append((random_motion(rng, T, area), present_mask(rng, T, 0.3), []))
        for motion, pres, cats in tracks:
            true_track = bool(cats)
            k = int(rng.integers(1, 8))  # categories this track is reported under
            extra = rng.choice(np.arange(1, NUM_CATEGORIES + 1), size=k, replace=False).tolist()
            cats = list(dict.fromkeys(cats + extra))[:k]
            shared = None if distinct_masks else ellipse_track_rles(*motion, pres)
            base = rng.uniform(0.4, 1.0) if true_track else rng.uniform(0.05, 0.7)
            for i, cat in enumerate(cats):
                if shared is not None:
                    segs = shared
                else:  # a pixel or two of jitter: every record's masks differ
                    d = rng.normal(0, 1.0, 2)
                    segs = ellipse_track_rles(motion[0] + d[0], motion[1] + d[1], *motion[2:], pres)
                score = float(base * rng.uniform(0.05, 1.0) if i else base)
                results.append({"video_id": vid, "category_id": cat, "score": score,
                                "segmentations": segs})
    gt = {"info": {"description": "synthetic YTVIS-2019-val-sized benchmark"},
          "videos": videos, "annotations": anns,
          "categories": [{"id": c, "name": f"class{c:02d}"} for c in range(1, NUM_CATEGORIES + 1)]}
    return gt, results


def best_of(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall-clock and best CPU (process) time over ``repeat`` runs, and the last output.

    CPU time is reported too because the machine is shared: wall time includes waiting for a core.
    """
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=302)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--distinct-masks", action="store_true",
                    help="every record gets its own masks (no mask shared between records)")
    ap.add_argument("--json-roundtrip", action="store_true",
                    help="time load_results on a results JSON file (includes JSON parsing)")
    args = ap.parse_args(argv)

    from tubelet.data.ytvis import load_results, load_ytvis
    from tubelet.eval import evaluate

    t0 = time.perf_counter()
    gt_dict, results = make_dataset(args.videos, args.seed, args.distinct_masks)
    t_gen = time.perf_counter() - t0
    gt = load_ytvis(gt_dict)
    if args.json_roundtrip:
        fd, path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        with open(path, "w") as f:
            json.dump(results, f)
        source = path
    else:
        source = results
    try:
        t_load, c_load, recs = best_of(lambda: load_results(source, gt), args.repeat)
    finally:
        if args.json_roundtrip:
            os.unlink(path)
    t_eval, c_eval, stats = best_of(lambda: evaluate(gt, recs), args.repeat)
    n_frames = sum(sum(s is not None for s in r["segmentations"]) for r in recs)
    print(json.dumps({
        "videos": len(gt.videos), "gt_tracks": len(gt.annotations), "result_records": len(recs),
        "result_mask_frames": n_frames,
        "distinct_masks": args.distinct_masks,
        "generate_s": round(t_gen, 3), "load_validate_s": round(t_load, 3),
        "load_validate_cpu_s": round(c_load, 3), "evaluate_s": round(t_eval, 3),
        "evaluate_cpu_s": round(c_eval, 3), "repeat": args.repeat,
        "AP": round(stats["AP"], 6), "AP50": round(stats["AP50"], 6), "AR10": round(stats["AR10"], 6),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
