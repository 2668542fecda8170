"""``tubelet eval GT.json RESULTS.json``: official YouTube-VIS / OVIS video AP and AR.

    tubelet eval valid.json results.json                      # COCO-style summary lines
    tubelet eval valid.json results.json --json               # one JSON object
    tubelet eval valid.json results.json --per-category --plot pr.png
    tubelet eval valid.json results.json --long-videos 3,17,42        # YouTube-VIS 2022
    tubelet eval valid.json results.json --long-videos long_valid.json
"""
from __future__ import annotations

import json
import os
import re

from tubelet.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate results against YouTube-VIS / OVIS ground truth")
    p.add_argument("gt", help="ground-truth JSON (YouTube-VIS 2019/2021/2022 or OVIS)")
    p.add_argument("results", help="results JSON: [{video_id, category_id, score, segmentations}]")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--per-category", action="store_true", help="also print the AP of each category")
    p.add_argument("--plot", metavar="PR.png", default=None,
                   help="write precision/recall curves (IoU 0.50, 0.75, 0.50:0.95) to this PNG")
    p.add_argument("--long-videos", metavar="IDS|FILE", default=None,
                   help="YouTube-VIS 2022: the long videos, as comma-separated ids, a text/JSON "
                        "file of ids, or a ground-truth JSON whose videos are the long ones; adds "
                        "the short/long metrics and mAP = (AP_short + AP_long) / 2")
    p.add_argument("--out", metavar="STATS.json", default=None,
                   help="also write the JSON object to this file (atomically)")
    p.set_defaults(func=run)


def parse_video_ids(spec: str) -> tuple[list[int], str | None]:
    """Video ids from ``--long-videos``: a file (GT JSON, JSON list, or text of ids) or a
    comma-separated list. Returns the ids and the file they came from (None for a list)."""
    if os.path.exists(spec):
        if os.path.isdir(spec):
            raise InputError("expected a file of video ids, found a folder", spec)
        with open(spec, encoding="utf-8", errors="replace") as f:
            text = f.read()
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            data = None
        if isinstance(data, dict):  # a ground-truth file: its videos are the long ones
            videos = data.get("videos")
            if not isinstance(videos, list):
                raise InputError("expected a ground-truth object with a 'videos' list", spec,
                                 None, "videos")
            ids = [v.get("id") if isinstance(v, dict) else None for v in videos]
            bad = next((i for i, v in enumerate(ids) if not _is_int(v)), None)
            if bad is not None:
                raise InputError(f"expected an int, got {ids[bad]!r}", spec, f"videos[{bad}]", "id")
            return ids, spec
        if isinstance(data, list):
            bad = next((i for i, v in enumerate(data) if not _is_int(v)), None)
            if bad is not None:
                raise InputError(f"expected a video id (int), got {data[bad]!r}", spec, f"[{bad}]")
            return data, spec
        if _is_int(data):
            return [data], spec
        tokens = [t for t in re.split(r"[\s,;]+", text) if t]
        try:
            return [int(t) for t in tokens], spec
        except ValueError:
            bad = next(t for t in tokens if not re.fullmatch(r"[+-]?\d+", t))
            raise InputError(f"not a video id: {bad[:40]!r} (expected ints separated by commas or "
                             f"whitespace, a JSON list, or a ground-truth JSON)", spec) from None
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens or not all(re.fullmatch(r"[+-]?\d+", t) for t in tokens):
        raise InputError(f"--long-videos {spec!r}: no such file, and not a comma-separated list "
                         f"of video ids")
    return [int(t) for t in tokens], None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def run(args) -> int:
    from tubelet.utils.fileio import gc_paused

    # No cyclic garbage collection for the whole command: loading makes ~1.5M containers on
    # YouTube-VIS val (none in a cycle), and every collection after loading would traverse them
    # all (a pause only during loading defers that to the first allocation after it).
    with gc_paused():
        return _run(args)


def _run(args) -> int:
    from tubelet.data.ytvis import load_results, load_ytvis
    from tubelet.eval import evaluate_detailed
    from tubelet.eval.report import format_report
    from tubelet.utils.fileio import check_output_file, write_json

    if args.out:
        check_output_file(args.out, "--out")
    if args.plot:
        check_output_file(args.plot, "--plot")
    gt = load_ytvis(args.gt)
    long_ids = None
    if args.long_videos is not None:
        long_ids, source = parse_video_ids(args.long_videos)
        unknown = [v for v in long_ids if v not in gt.videos]
        if unknown:
            raise InputError(f"long video id {unknown[0]} is not a video of {args.gt}"
                             + (f" ({len(unknown)} unknown ids)" if len(unknown) > 1 else ""),
                             source or None, None, None if source else "--long-videos")
    results = load_results(args.results, gt)
    res = evaluate_detailed(gt, results, long_video_ids=long_ids)
    stats = res.stats
    if args.out:
        write_json(args.out, stats, indent=1)
    if args.plot:
        from tubelet.eval.plot import plot_pr_curves
        plot_pr_curves(res.pr_curves(), res.params.recall_thresholds, args.plot,
                       title=f"{os.path.basename(args.results)} on {os.path.basename(args.gt)}")
    if args.json:
        print(json.dumps(stats, allow_nan=False))
    else:
        print(format_report(stats, per_category=args.per_category))
        if args.plot:
            print(f"\nwrote {args.plot}")
    return 0
