"""Class-agnostic DAVIS scores of one model, overall and per held-out sequence.

    python bench/davis_eval.py --weights runs/iai_condinst_davis/last.pt \\
        [--gt data/davis/davis2016_valid_sub.json] \\
        [--images ../shared/data/davis2016/JPEGImages/480p] [key=value ...]

The held-out split comes from ``tubelet import-davis`` + ``tubelet split --val-fraction 0.2
--seed 0`` (the ``_davis`` configs' recipe). Every sequence is predicted once; the official
metric (``tubelet.eval.evaluate``) then scores all of them together and each one alone (the GT
restricted to that video). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.engine.loading import load_method
from tubelet.engine.predict import predict_records
from tubelet.eval import evaluate

KEYS = ("AP", "AP50", "AP75", "AR1", "AR10")


def score(model, gt, images: str, recs: list | None = None):
    """Predict every video of ``gt`` with ``model`` (unless ``recs`` are given), then score them
    together and each sequence alone -> ``(recs, overall, per_sequence, seconds)``."""
    t0 = time.time()
    if recs is None:
        recs = load_results(predict_records(model, gt, images, list(gt.videos), progress=False),
                            gt)
    seconds = time.time() - t0
    overall = evaluate(gt, recs)
    per_seq = {}
    for vid, v in gt.videos.items():
        m = evaluate(gt.subset([vid]), [r for r in recs if r["video_id"] == vid])
        per_seq[v.name or str(vid)] = {k: m[k] for k in KEYS}
    return recs, overall, per_seq, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--gt", default="data/davis/davis2016_valid_sub.json")
    ap.add_argument("--images", default="../shared/data/davis2016/JPEGImages/480p")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gt = load_ytvis(args.gt)
    model, cfg = load_method(None, args.weights, args.overrides)
    _, overall, per_seq, seconds = score(model, gt, args.images)
    print(json.dumps({"weights": args.weights, "method": cfg.method, "gt": args.gt,
                      "overrides": args.overrides, "seconds": seconds,
                      "overall": {k: overall[k] for k in KEYS}, "per_sequence": per_seq},
                     indent=1))


if __name__ == "__main__":
    main()
