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
    import sys

    from tubelet.data.ytvis import load_ytvis, validate_results
    from tubelet.utils.fileio import read_json
    gt = load_ytvis(args.gt)
    frames = sum(v.length for v in gt.videos.values())
    print(f"{args.gt}: ok: {len(gt.videos)} videos, {frames} frames, {len(gt.categories)} "
          f"categories, {len(gt.annotations)} tracks")
    if args.results:
        raw = read_json(args.results)
        recs = validate_results(raw, gt, str(args.results),
                                ignore_unknown_categories=not args.strict_categories)
        if isinstance(raw, dict):
            raw = raw.get("annotations", [])
        dropped = len(raw) - len(recs)
        print(f"{args.results}: ok: {len(recs)} records")
        if dropped:  # issue 13: "ok: 0 records" with every category unknown was silent
            print(f"{args.results}: warning: {dropped} of {len(raw)} records have a category "
                  f"absent from {args.gt} and are ignored (as by the official evaluator)"
                  + ("; no record is scored" if not recs else ""), file=sys.stderr)
    return 0
