"""``tubelet import-davis`` and ``tubelet split``: dataset preparation commands."""
from __future__ import annotations

from pathlib import Path

from tubelet.errors import InputError
from tubelet.utils.fileio import check_output_dir, check_output_file, read_json, write_json


def register(sub) -> None:
    p = sub.add_parser("import-davis", help="DAVIS-style PNG masks to YouTube-VIS ground truth")
    p.add_argument("root", help="folder with JPEGImages/[480p/]<seq>/ and Annotations/[480p/]<seq>/")
    p.add_argument("out", help="output ground-truth JSON")
    p.add_argument("--sequences", default=None, help="comma-separated subset of sequences")
    p.set_defaults(func=run_import_davis)

    p = sub.add_parser("split", help="reproducible train_sub/valid_sub split by video")
    p.add_argument("gt", help="YouTube-VIS ground-truth JSON")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=None,
                   help="where to write <stem>_train_sub.json and <stem>_valid_sub.json "
                        "(default: beside GT)")
    p.set_defaults(func=run_split)


def run_import_davis(args) -> int:
    from tubelet.data.davis import import_davis
    from tubelet.data.ytvis import load_ytvis
    check_output_file(args.out)
    seqs = args.sequences.split(",") if args.sequences else None
    data = import_davis(args.root, seqs)
    load_ytvis(data, path=args.out)  # validate what we are about to write
    write_json(args.out, data)
    print(f"wrote {args.out}: {len(data['videos'])} videos, {len(data['annotations'])} tracks")
    return 0


def run_split(args) -> int:
    from tubelet.data.split import split_by_video
    from tubelet.data.ytvis import load_ytvis
    if args.out_dir:
        check_output_dir(args.out_dir, "--out-dir")
    data = read_json(args.gt)
    load_ytvis(data, path=args.gt)  # full validation before splitting
    try:
        train, val = split_by_video(data, args.val_fraction, args.seed)
    except ValueError as exc:
        raise InputError(str(exc), args.gt) from None
    gt = Path(args.gt)
    out_dir = Path(args.out_dir) if args.out_dir else gt.parent
    tr, va = out_dir / f"{gt.stem}_train_sub.json", out_dir / f"{gt.stem}_valid_sub.json"
    check_output_file(tr)
    check_output_file(va)
    write_json(tr, train)
    write_json(va, val)
    print(f"wrote {tr} ({len(train['videos'])} videos) and {va} ({len(val['videos'])} videos)")
    return 0
