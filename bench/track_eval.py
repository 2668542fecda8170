"""Score results files of one dataset: AP / AP50 / AR10 and identity switches, one row each.

    python bench/track_eval.py data/synth_bench/valid/instances.json \\
        greedy=runs/eval_bench_greedy/results.json memory=runs/eval_bench_memory/results.json

AP and AR come from :func:`tubelet.eval.evaluate` (the official metric). Identity switches use
the definition of :mod:`tubelet.sim.metrics` (a GT instance whose matched frames involve more
than one predicted record; swaps vs fragments); every results record counts as one track, since
YouTube-VIS results carry no track id. Prints one JSON object and a markdown table on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.eval import evaluate
from tubelet.sim.metrics import SwitchStats, identity_switches
from tubelet.structures import VideoInstances


def switches(gt, recs) -> SwitchStats:
    by_video = defaultdict(list)
    for r in recs:
        by_video[r["video_id"]].append(r)
    total = SwitchStats()
    for vid, v in gt.videos.items():
        tracks = [a.segmentations for a in gt.annotations if a.video_id == vid and not a.iscrowd]
        pred = VideoInstances.from_results(by_video.get(vid, []), v.height, v.width, v.length)
        total = total + identity_switches(tracks, pred)
    return total


def score(gt, recs) -> dict:
    """Official AP / AR and identity switches of one results list (a row of the tables)."""
    m = evaluate(gt, recs)
    s = switches(gt, recs).summary()
    return {"records": len(recs), **{k: m[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10")},
            **{k: s[k] for k in ("gt_instances", "gt_matched", "switches", "swaps", "id_changes")}}


def print_table(rows: list[dict], lead: dict[str, str], file=sys.stderr) -> None:
    """A markdown table of :func:`score` rows: the ``lead`` columns (header -> row key) then AP,
    AP50, AP75, AR1, AR10 (percent), switches / matched GT and swaps."""
    heads = [*lead, "AP", "AP50", "AP75", "AR1", "AR10", "switches / matched GT", "swaps"]
    print("| " + " | ".join(heads) + " |\n|" + "---|" * len(heads), file=file)
    for r in rows:
        cells = [str(r[k]) for k in lead.values()]
        cells += [f"{100 * r[k]:.1f}" for k in ("AP", "AP50", "AP75", "AR1", "AR10")]
        cells += [f"{r['switches']} / {r['gt_matched']}", str(r["swaps"])]
        print("| " + " | ".join(cells) + " |", file=file)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gt")
    ap.add_argument("results", nargs="+", help="name=RESULTS.json")
    args = ap.parse_args()
    gt = load_ytvis(args.gt)
    rows = []
    for item in args.results:
        name, path = item.split("=", 1)
        rows.append({"name": name, "results": path, **score(gt, load_results(path, gt))})
    print(json.dumps({"gt": args.gt, "rows": rows}, indent=1))
    print_table(rows, {"tracker": "name"})


if __name__ == "__main__":
    main()
