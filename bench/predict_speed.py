"""Inference throughput (frames/s) of condinst-track per tracker, at the synthetic size and 360x640.

    python bench/predict_speed.py [--weights W] [--frames 40] [--threads 2] [--repeat 3]

Frames come from the synthetic generator (bench look) rendered at each size; the model is the
bundled one unless --weights is given. Times the whole streaming path (resize, CondInst, mask
paste, RLE, tracker) on the model as ``tubelet predict`` loads it (BatchNorm folded, NHWC); the
first 3 frames are warm-up; each setting runs ``--repeat`` times and the median is reported (a
shared 2-core machine varies by +-20% run to run). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="192x320,360x640")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tubelet.data.synth import generate_video, preset
    from tubelet.engine.loading import load_method
    out = {"threads": args.threads, "frames": args.frames, "results": []}
    for size in args.sizes.split(","):
        h, w = map(int, size.split("x"))
        cfg = replace(preset("bench"), height=h, width=w, min_frames=args.frames + 3,
                      max_frames=args.frames + 3)
        frames = [f.image for f in generate_video(cfg, seed=123, index=0)]
        for tracker in ("greedy", "memory"):
            model, mcfg = load_method(None, args.weights, [f"model.tracker={tracker}",
                                                           f"model.test_short_side={min(h, w)}",
                                                           f"model.test_max_size={max(h, w)}"])
            runs = []
            for _ in range(args.repeat):
                stream = iter(model.predict_video(frames))
                for _ in range(3):
                    next(stream)
                t0 = time.perf_counter()
                n = sum(1 for _ in stream)
                runs.append(n / (time.perf_counter() - t0))
            out["results"].append({"size": size, "tracker": tracker,
                                   "frames_per_s": statistics.median(runs),
                                   "runs_frames_per_s": runs, "timed_frames": n})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
