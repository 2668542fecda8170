"""Training throughput (images/s) of condinst-track at the synthetic size and at 360x640.

    python bench/train_speed.py [--steps 8] [--threads 2]

Runs the real trainer (tubelet.engine.trainer.train) for a few steps on a small synthetic set
rendered at each size (batch 2 clips x 2 frames, the bench config otherwise) and reports the
trainer's own images/s over the steps after the first (warm-up). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="192x320,360x640")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tubelet.data.synth import preset, write_dataset
    from tubelet.engine.config import load_experiment
    from tubelet.engine.trainer import train
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            h, w = map(int, size.split("x"))
            root = Path(tmp) / size
            cfg_s = replace(preset("bench"), height=h, width=w, splits=("train",),
                            split_videos=(8,), min_frames=10, max_frames=12)
            write_dataset(root, cfg_s, seed=0)
            ov = [f"data.train_json={root}/train/instances.json",
                  f"data.train_images={root}/train/JPEGImages", "data.val_json=",
                  f"train.max_iters={args.steps}", "train.log_every=1",
                  f"data.clip.aug.short_sides=[{min(h, w)}]", f"data.clip.aug.max_size={max(h, w)}",
                  "train.warmup_iters=1"]
            cfg = load_experiment("configs/condinst_track_bench.yaml", ov)
            run = Path(tmp) / f"run{size}"
            s = train(cfg, run, progress=False)
            rows = (run / "metrics.csv").read_text().splitlines()
            # images/s of steps 2..N: from the cumulative counter of the trainer's CSV
            header = rows[0].split(",")
            i_ips = header.index("images_per_s")
            results.append({"size": size, "images_per_s": float(rows[-1].split(",")[i_ips]),
                            "steps": s["steps"], "seconds": s["seconds"],
                            "images_per_step": cfg.train.batch_size * cfg.data.clip.num_frames})
    print(json.dumps({"threads": args.threads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
