"""``tubelet validate GT.json [RESULTS.json]``: check files before training or submission."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("validate", help="validate a ground-truth file and optionally a results file")
    p.add_argument("gt", help="YouTube-VIS / OVIS ground-truth JSON")
    p.add_argument("results", nargs="?", default=None, help="results JSON to check against GT")
    p.add_argument("--strict-categories", action="store_true",
                   help="treat result categories absent from the GT as errors (the official "
                        "evaluator silently ignores them)")
    p.set_defaults(func=run)


def run(args) -> int:
    from tubelet.data.ytvis import load_results, load_ytvis
    gt = load_ytvis(args.gt)
    frames = sum(v.length for v in gt.videos.values())
    print(f"{args.gt}: ok: {len(gt.videos)} videos, {frames} frames, {len(gt.categories)} "
          f"categories, {len(gt.annotations)} tracks")
    if args.results:
        recs = load_results(args.results, gt, ignore_unknown_categories=not args.strict_categories)
        print(f"{args.results}: ok: {len(recs)} records")
    return 0
