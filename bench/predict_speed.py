"""Inference throughput (frames/s) of a model per tracker, at the synthetic size and 360x640.

    python bench/predict_speed.py [--weights W] [--trackers greedy,memory] [--frames 40]
                                  [--threads 2] [--repeat 3] [key=value ...]

Frames come from the synthetic generator (bench look) rendered at each size; the model is the
bundled one unless --weights is given. Times the whole streaming path (resize, CondInst, mask
paste, RLE, tracker) on the model as ``tubelet predict`` loads it (BatchNorm folded, NHWC); online
methods: the first 3 frames are warm-up and frames/s counts the rest; offline methods (which
emit nothing before the whole video is processed): one warm-up video, then the whole video
is timed (``seconds_per_video`` too). ``--trackers``: comma-separated, default the weights' own
tracker; extra ``key=value`` overrides go to every setting; each setting runs ``--repeat`` times and the median is reported (a
shared 2-core machine varies by +-20% run to run). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch
from stream_timing import synthetic_frames, time_stream


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="192x320,360x640")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--trackers", default=None, help="comma-separated; default: the stored one")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tubelet.engine.loading import load_method
    out = {"threads": args.threads, "frames": args.frames, "results": []}
    for size in args.sizes.split(","):
        h, w = map(int, size.split("x"))
        frames = synthetic_frames(h, w, args.frames + 3)
        for tracker in args.trackers.split(",") if args.trackers else [None]:
            over = [f"model.test_short_side={min(h, w)}", f"model.test_max_size={max(h, w)}",
                    *([f"model.tracker={tracker}"] if tracker else []), *args.overrides]
            model, mcfg = load_method(None, args.weights, over)
            offline = model.paradigm == "offline"
            runs, per_video = [], []
            if offline:
                sum(1 for _ in model.predict_video(frames))
            for _ in range(args.repeat):
                n, seconds = time_stream(model.predict_video(frames), warmup=0 if offline else 3)
                per_video.append(seconds)
                runs.append(n / seconds)
            row = {"size": size, "method": mcfg.method,
                   "tracker": tracker or getattr(model.cfg, "tracker", None),
                   "frames_per_s": statistics.median(runs), "runs_frames_per_s": runs,
                   "timed_frames": n}
            if offline:
                row["seconds_per_video"] = statistics.median(per_video)
            out["results"].append(row)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
