"""The cost of ``train.deterministic=true``: seconds per training step with it off and on.

    python bench/train_determinism.py [--preset bench|tiny] [--steps 10] [--repeats 3]
                                      [--threads 0]

condinst-track on a small synthetic set (``bench``: 8 videos at 192x320 with
``configs/condinst_track_bench.yaml``; ``tiny``: the smoke-test set and config), trained with
the real trainer, deterministic off and on in interleaved runs (off, on, off, on, ...) so that
a change in machine load hits both alike. Off runs use ``--threads`` intra-op threads (0:
torch's default); on runs use one (what the mode fixes). Seconds per step: the median interval
between the starts of consecutive forward passes (steps 2 .. N-1: the warm-up step and the
final checkpoint left out). Also reports whether the runs of each mode ended with bit-identical
weights (the deterministic ones must; the others may differ on a loaded machine). Prints one
JSON object. Time it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch


def _data(tmp: Path, which: str) -> tuple[str, list[str]]:
    from tubelet.data.synth import preset, write_dataset
    root = tmp / "data"
    if which == "tiny":
        write_dataset(root, preset("tiny"), seed=0)
        return "configs/condinst_track_tiny.yaml", []
    cfg = replace(preset("bench"), height=192, width=320, splits=("train",), split_videos=(8,),
                  min_frames=10, max_frames=12)
    write_dataset(root, cfg, seed=0)
    return "configs/condinst_track_bench.yaml", ["data.val_json=", "train.warmup_iters=1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=("bench", "tiny"), default="bench")
    ap.add_argument("--steps", type=int, default=10, help="steps per run (>= 3)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode (interleaved)")
    ap.add_argument("--threads", type=int, default=0, help="off runs' threads (0: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from tubelet.engine import trainer
    from tubelet.engine.config import load_experiment

    starts: list[float] = []
    threads_seen: list[int] = []
    real = trainer.split_losses

    def timed(out):  # called once per forward pass, i.e. once per step (accum_steps = 1)
        starts.append(time.perf_counter())
        threads_seen.append(torch.get_num_threads())
        return real(out)
    trainer.split_losses = timed

    per_step: dict[str, list[float]] = {"off": [], "on": []}
    sums: dict[str, list[float]] = {"off": [], "on": []}
    threads: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config, extra = _data(Path(tmp), args.preset)
        root = Path(tmp) / "data" / "train"
        for r in range(args.repeats):
            for mode in ("off", "on"):
                cfg = load_experiment(config, [
                    f"data.train_json={root}/instances.json",
                    f"data.train_images={root}/JPEGImages",
                    f"train.max_iters={args.steps}", "train.log_every=1000",
                    "train.ckpt_every=100000", "train.accum_steps=1",
                    f"train.deterministic={'true' if mode == 'on' else 'false'}", *extra])
                starts.clear()
                threads_seen.clear()
                s = trainer.train(cfg, Path(tmp) / f"run_{mode}_{r}", progress=False)
                gaps = [b - a for a, b in zip(starts[1:], starts[2:])]  # steps 2 .. N-1
                per_step[mode].append(statistics.median(gaps))
                sums[mode].append(s["checksums"][0])
                threads[mode] = threads_seen[-1]
    off, on = statistics.median(per_step["off"]), statistics.median(per_step["on"])
    print(json.dumps({
        "preset": args.preset, "config": config, "steps": args.steps, "repeats": args.repeats,
        "threads": threads, "torch": torch.__version__,
        "seconds_per_step": {"off": off, "on": on},
        "runs_seconds_per_step": per_step,
        "ratio_on_over_off": on / off,
        "bit_identical_runs": {m: len(set(v)) == 1 if len(v) > 1 else None
                               for m, v in sums.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
