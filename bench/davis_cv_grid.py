"""Several DAVIS cross-validation recipes at once, for a machine with many cores (and a GPU).

    python bench/davis_cv_grid.py --config configs/condinst_track_objects.yaml --grid GRID.json \\
        --out runs/grid [--gt data/davis/davis2016.json] [--images ...] [--jobs 8] \\
        [--deadline 480] [--json FILE]

GRID.json: ``{"train": {"name": ["key=value", ...], ...}, "infer": {"name": [...], ...}}``.
Every training variant runs the 5 folds of ``bench/davis_cv.py`` (same folds, same commands:
``OUT/<train>/foldK``), ``--jobs`` trainings at a time, one thread each (``train.device=auto``
puts them on the GPU when there is one). Trainings not started ``--deadline`` seconds after the
start are skipped, and running ones are stopped at the deadline (a stopped fold is not scored).
Then every (training variant, inference variant) pair is scored as ``davis_cv.py`` scores it:
the held-out sequences of every finished fold predicted with the config's inference settings +
the inference variant's overrides, pooled, with the official metric. Prints one JSON object and
rewrites ``--json`` after each pair, so a run cut short keeps what it scored.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from davis_cv import finished, folds, prepare_fold, train_command  # noqa: E402
from davis_eval import KEYS, score  # noqa: E402

from tubelet.data.ytvis import load_ytvis  # noqa: E402
from tubelet.engine.loading import load_method  # noqa: E402
from tubelet.utils.fileio import read_json, write_json  # noqa: E402


def _train_all(args, grid: dict, splits, by_name, raw, t_start: float) -> dict:
    """Run every (variant, fold) training, ``args.jobs`` at a time -> seconds per run."""
    queue, running, seconds = [], {}, {}
    for v, overrides in grid["train"].items():
        for k, names in enumerate(splits):
            fold = Path(args.out) / v / f"fold{k}"
            prepare_fold(fold, raw, {by_name[n] for n in names})
            if not finished(fold):
                queue.append((v, k, fold, overrides))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while queue or running:
        late = time.time() - t_start > args.deadline
        while queue and len(running) < args.jobs and not late:
            v, k, fold, overrides = queue.pop(0)
            cmd = train_command(args.config, fold, args.images, 1, overrides)
            log = open(fold / "train.log", "w")
            running[(v, k)] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                env=env), time.time(), log)
        if late:
            queue.clear()
            for p, _, _ in running.values():
                if p.poll() is None:
                    p.terminate()  # SIGTERM: the trainer checkpoints and marks the run stopped
        for key, (p, t0, log) in list(running.items()):
            if p.poll() is not None:
                log.close()
                seconds[f"{key[0]}/fold{key[1]}"] = round(time.time() - t0, 1)
                if p.returncode:
                    tail = (Path(args.out) / key[0] / f"fold{key[1]}" / "train.log").read_text()
                    print(f"{key}: exit {p.returncode}\n{tail[-1500:]}", file=sys.stderr)
                del running[key]
        time.sleep(1.0)
    return seconds


def _score_fold(job: tuple) -> list | None:
    """The held-out records of one fold (``None``, with the error printed, if it fails)."""
    config, weights, overrides, gt_path, ids, images = job
    torch.set_num_threads(1)
    try:
        gt = load_ytvis(gt_path)
        model, _ = load_method(config, weights, overrides)
        return score(model, gt.subset(ids), images)[0]
    except Exception as exc:  # one bad variant must not lose the others' scores
        print(f"{weights} {overrides}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--grid", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gt", default="data/davis/davis2016.json")
    ap.add_argument("--images", default="../shared/data/davis2016/JPEGImages/480p")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=1e9, help="seconds to start/stop training")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    t_start = time.time()
    grid = read_json(args.grid)
    gt = load_ytvis(args.gt)
    by_name = {v.name: i for i, v in gt.videos.items()}
    splits = folds(list(by_name))
    seconds = _train_all(args, grid, splits, by_name, read_json(args.gt), t_start)
    report = {"config": args.config, "grid": grid, "train_seconds": seconds, "scores": {}}
    jobs, keys, expected = [], [], {}
    for v, train_over in grid["train"].items():
        done = [k for k in range(len(splits)) if finished(Path(args.out) / v / f"fold{k}")]
        expected[v] = sum(len(splits[k]) for k in done)  # held-out videos a variant pools
        for name, infer_over in grid["infer"].items():
            for k in done:
                ids = sorted(by_name[n] for n in splits[k])
                jobs.append((args.config, str(Path(args.out) / v / f"fold{k}" / "last.pt"),
                             [*train_over, *infer_over], args.gt, ids, args.images))
                keys.append((v, name, ids))
    pooled: dict = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for (v, name, ids), recs in zip(keys, pool.map(_score_fold, jobs)):
            entry = pooled.setdefault((v, name), {"ids": [], "recs": []})
            if recs is None:
                continue
            entry["ids"] += ids
            entry["recs"] += recs
            if len(entry["ids"]) == expected[v]:
                sub = gt.subset(entry["ids"])
                _, overall, per_seq, _ = score(None, sub, args.images, recs=entry["recs"])
                report["scores"][f"{v}/{name}"] = {
                    "videos": len(entry["ids"]), "overall": {k: overall[k] for k in KEYS},
                    "per_sequence": {s: m["AP"] for s, m in per_seq.items()}}
                report["elapsed_s"] = round(time.time() - t_start, 1)
                if args.json:
                    write_json(args.json, report, indent=1)
                print(f"{v}/{name}: {json.dumps(report['scores'][f'{v}/{name}']['overall'])}",
                      file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
