"""``tubelet reduce PROPOSALS.json OUT.json``: Propose-Reduce sequence reduction of a file.

Input, one of (decided per file by the first record):

- sequence proposals: ``[{"video_id", "segmentations": [RLE | null] x T,
  "category_scores": {category_id: score, ...}}]``, one record per proposal. The agnostic score
  is the maximum category score; the output has one record per (sequence, category) that
  survives (Eq. 2 then Eq. 3 of the 2021 category-aware paper).
- a plain YouTube-VIS results file (``category_id`` + ``score`` per record): each (video,
  category) group is reduced on its own, as single-class proposals.

Videos are processed one at a time (records grouped by video; masks stay RLE, never dense);
the work is done by :mod:`tubelet.data.proposals`.
"""
from __future__ import annotations

from tubelet.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("reduce", help="sequence NMS + category-aware soft-NMS of sequence "
                                      "proposals (Propose-Reduce)")
    p.add_argument("proposals", help="proposals JSON (category_scores per record) or a results "
                                     "JSON (category_id + score per record)")
    p.add_argument("out", help="output YouTube-VIS results JSON")
    p.add_argument("--agnostic-iou", type=float, default=None,
                   help="θ of the category-agnostic sequence NMS: drop a sequence whose sequence "
                        "IoU with a kept one is >= θ (default 0.9, or 0.5 with --no-aware)")
    p.add_argument("--aware-iou", type=float, default=0.5,
                   help="IoU threshold of the category-aware step with --method linear (scores "
                        "of sequences with IoU >= it are multiplied by 1 - IoU). The Gaussian "
                        "decay exp(-IoU^2/sigma) has no threshold and ignores it (default 0.5)")
    p.add_argument("--method", choices=["gaussian", "linear"], default="gaussian",
                   help="soft-NMS decay of the category-aware step (default gaussian)")
    p.add_argument("--sigma", type=float, default=0.5, help="σ of the Gaussian decay (0.5)")
    p.add_argument("--score-thr", type=float, default=None,
                   help="output records need a score > this; with the category-aware step it is "
                        "also the soft-NMS floor (default 0.001, or 0.05 with --no-aware)")
    p.add_argument("--max-per-class", type=int, default=100,
                   help="at most this many sequences per category and video (100)")
    p.add_argument("--no-aware", action="store_true",
                   help="only the category-agnostic NMS (the original Propose-Reduce)")
    p.add_argument("--gt", default=None,
                   help="ground truth: check video ids, lengths, frame sizes and categories")
    p.set_defaults(func=run)


def _check_args(args) -> None:
    for name in ("agnostic_iou", "aware_iou"):
        v = getattr(args, name)
        if v is not None and not 0.0 <= v <= 1.0:
            raise InputError(f"must be in [0, 1], got {v}", None, None, "--" + name.replace("_", "-"))
    if not args.sigma > 0:
        raise InputError(f"must be > 0, got {args.sigma}", None, None, "--sigma")
    if args.score_thr is not None and not 0.0 <= args.score_thr < 1.0:
        raise InputError(f"must be in [0, 1), got {args.score_thr}", None, None, "--score-thr")
    if args.max_per_class < 1:
        raise InputError(f"must be >= 1, got {args.max_per_class}", None, None, "--max-per-class")


def _config(args):
    from tubelet.ops import ReduceConfig
    cfg = ReduceConfig(aware=not args.no_aware, agnostic_iou=args.agnostic_iou, method=args.method,
                       sigma=args.sigma, aware_iou=args.aware_iou, max_per_class=args.max_per_class)
    if args.score_thr is not None:
        cfg.output_thr = args.score_thr
        cfg.aware_score_thr = args.score_thr
    return cfg


def run(args) -> int:
    from tubelet.data.proposals import PROPOSALS, reduce_records
    from tubelet.data.ytvis import load_ytvis, save_results
    from tubelet.utils.fileio import read_json
    from tubelet.utils.fileio import check_output_file
    _check_args(args)
    check_output_file(args.out)
    cfg = _config(args)
    path = str(args.proposals)
    gt = load_ytvis(args.gt) if args.gt else None
    res = reduce_records(read_json(path), path, cfg, gt)
    save_results(args.out, res.records)
    kind = "proposals" if res.kind == PROPOSALS else "result records"
    print(f"{path}: {res.num_inputs} {kind} in {res.num_videos} videos -> {len(res.records)} "
          f"records: {args.out}")
    return 0
