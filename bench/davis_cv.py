"""Class-agnostic DAVIS scores on every sequence unseen in training: 5-fold cross-validation.

    python bench/davis_cv.py --config configs/condinst_track_davis.yaml --out runs/davis_cv \\
        [--gt data/davis/davis2016.json] [--images ../shared/data/davis2016/JPEGImages/480p] \\
        [--folds 0,1,2,3,4] [--threads 2] [key=value ...]

The 10 sequences of ``../shared/data/davis2016`` (``tubelet import-davis``) are split into 5
folds of 2. Fold 0 holds out dog and kite-surf: the held-out pair of ``tubelet split
--val-fraction 0.2 --seed 0`` that every ``_davis`` config uses, so fold 0 is the same split as
``bench/davis_eval.py``. Folds 1-4 pair the other 8 in name order. For each fold a model is trained
on the other 8 sequences (``tubelet train --config ... data.train_json=... data.val_json=``, its own
run folder ``OUT/foldK``; a fold whose ``summary.json`` says it finished is not trained again, so an interrupted
run resumes with ``--resume``), then its 2 held-out sequences are predicted with the config's current inference settings (so a
tracker gate or NMS changed after training applies to every fold). All 10 held-out predictions are then
scored together with the official metric (``tubelet.eval.evaluate``) and each sequence alone.
Every video is scored by a model that never saw it. Prints one JSON object; ``--json FILE``
also writes it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from davis_eval import KEYS, score  # noqa: E402

from tubelet.data.split import videos_where  # noqa: E402
from tubelet.data.ytvis import load_ytvis  # noqa: E402
from tubelet.engine.loading import load_method  # noqa: E402
from tubelet.utils.fileio import read_json, write_json  # noqa: E402

FOLD0 = ("dog", "kite-surf")


def folds(names: list[str]) -> list[tuple[str, ...]]:
    """Fold 0 = dog + kite-surf (the ``_davis`` configs' held-out pair), then the rest in pairs
    by name."""
    rest = sorted(n for n in names if n not in FOLD0)
    out = [FOLD0] if all(n in names for n in FOLD0) else []
    out += [tuple(rest[i:i + 2]) for i in range(0, len(rest), 2)]
    return out


def prepare_fold(fold: Path, raw: dict, val_ids: set[int]) -> None:
    """``fold/train.json``: the ground truth without the held-out videos ``val_ids``."""
    fold.mkdir(parents=True, exist_ok=True)
    write_json(fold / "train.json", videos_where(raw, lambda i: i not in val_ids))


def train_command(config: str, fold: Path, images: str, threads: int,
                  overrides: list[str]) -> list[str]:
    """``tubelet train`` of one fold: its train.json, no validation set, the run in ``fold``."""
    return [sys.executable, "-m", "tubelet", "train", "--config", config, "--out", str(fold),
            "--no-progress", "--threads", str(threads), f"data.train_json={fold / 'train.json'}",
            f"data.train_images={images}", "data.val_json=", *overrides]


def finished(fold: Path) -> bool:
    """The fold's training ran to its end: summary.json exists and does not say ``stopped_by``
    (a run stopped by a signal writes one too)."""
    summary = fold / "summary.json"
    return summary.exists() and not read_json(summary).get("stopped_by")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gt", default="data/davis/davis2016.json")
    ap.add_argument("--images", default="../shared/data/davis2016/JPEGImages/480p")
    ap.add_argument("--folds", default=None, help="comma-separated fold indices (default all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the report here")
    ap.add_argument("overrides", nargs="*", help="key=value training overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gt = load_ytvis(args.gt)
    by_name = {v.name: i for i, v in gt.videos.items()}
    splits = folds(list(by_name))
    chosen = range(len(splits)) if args.folds is None else [int(k) for k in args.folds.split(",")]
    out = Path(args.out)
    raw = read_json(args.gt)
    recs, held, train_s = [], [], {}
    for k in chosen:
        names = splits[k]
        fold = out / f"fold{k}"
        val_ids = {by_name[n] for n in names}
        prepare_fold(fold, raw, val_ids)
        if not finished(fold):
            t0 = time.time()
            cmd = train_command(args.config, fold, args.images, args.threads, args.overrides)
            if (fold / "last.pt").exists():
                cmd.append("--resume")
            subprocess.run(cmd, check=True)
            train_s[k] = round(time.time() - t0, 1)
        # the config file's inference settings (gates, NMS), not the ones stored at training
        model, _ = load_method(args.config, str(fold / "last.pt"), args.overrides)
        held += sorted(val_ids)
        recs += score(model, gt.subset(sorted(val_ids)), args.images)[0]
        print(f"fold {k} {names}: done", file=sys.stderr)
    sub = gt.subset(held)
    _, overall, per_seq, _ = score(None, sub, args.images, recs=recs)
    report = {"config": args.config, "overrides": args.overrides, "folds": {
        k: list(splits[k]) for k in chosen}, "train_seconds": train_s,
        "overall": {k: overall[k] for k in KEYS}, "per_sequence": per_seq}
    if args.json:
        write_json(args.json, report, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
