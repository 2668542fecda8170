"""Propose-Reduce's ablations on one trained model (the papers' Tables 1c / 1d directions):
the reduction (none / agnostic 0.5 / agnostic 0.9 + category-aware / aware only) at K = 5, and
K = 1, 3, 5 key frames with the default reduction.

    python bench/propose_reduce_ablation.py --weights runs/propose_reduce_bench/last.pt \\
        --source data/synth_bench/valid [--keys 1,3,5] [--max-videos 0] [--threads 2]

Each video's sequence proposals are computed once, from the union of the key-frame sets
(``key_frames(T, K)`` for every K asked for), with ``ProposeReduce.propose(video, keys)``; a
proposal depends only on its own key frame (detection there, then propagation from it), so the
K-key set is exactly ``props.from_keys(key_frames(T, K))`` -- the same sequences a K-key run
would propose -- and every reduction mode is applied to the same proposals. Scores: official
AP / AR and identity switches (``bench/track_eval.py``). Prints one JSON object and a markdown
table on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from track_eval import print_table, score

from tubelet.data.ytvis import load_ytvis
from tubelet.engine.loading import load_method
from tubelet.engine.predict import dataset_video, first_videos
from tubelet.methods.propose_reduce.config import REDUCTIONS, reduce_config
from tubelet.methods.propose_reduce.inference import reduce_to_instances
from tubelet.ops.key_frames import key_frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--source", required=True, help="dataset folder (instances.json + JPEGImages)")
    ap.add_argument("--keys", default="1,3,5")
    ap.add_argument("--reductions", default=",".join(REDUCTIONS))
    ap.add_argument("--max-videos", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, mcfg = load_method(None, args.weights, args.overrides)
    model.eval()
    cfg = model.cfg
    ks = sorted({int(k) for k in args.keys.split(",")})
    reductions = [r for r in args.reductions.split(",") if r]
    settings = [(max(ks), r) for r in reductions]  # reductions at the largest K
    settings += [(k, cfg.reduction) for k in ks if (k, cfg.reduction) not in settings]
    gt = load_ytvis(str(Path(args.source) / "instances.json"))
    gt = gt.subset(first_videos(gt, args.max_videos))
    records: dict[tuple[int, str], list[dict]] = {s: [] for s in settings}
    seconds = 0.0
    for vid in sorted(gt.videos):
        t0 = time.perf_counter()
        with dataset_video(gt, vid, Path(args.source) / "JPEGImages") as video:
            n = len(video)
            union = sorted(set().union(*(key_frames(n, k) for k in ks)))
            props = model.propose(video, keys=union)
            seconds += time.perf_counter() - t0
            for k, red in settings:
                res = reduce_to_instances(props.from_keys(key_frames(n, k)),
                                          reduce_config(replace(cfg, reduction=red)),
                                          model.category_ids, video.height, video.width)
                records[(k, red)].extend(res.to_results(vid))
        print(f"video {vid}: {n} frames, {len(props)} proposals", file=sys.stderr, flush=True)
    rows = [{"keys": k, "reduction": red, **score(gt, records[(k, red)])} for k, red in settings]
    out = {"weights": args.weights, "source": args.source, "videos": len(gt.videos),
           "proposal_seconds_union_of_keys": seconds, "keys_union_note":
           "proposals computed once per video from the union of the key sets", "rows": rows}
    print(json.dumps(out, indent=1))
    print_table(rows, {"K": "keys", "reduction": "reduction"})


if __name__ == "__main__":
    main()
