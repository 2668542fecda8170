"""``tubelet export SRC DST [--config C] [--fp32] [key=value ...]``: strip a training checkpoint
to a small inference weights file (half-precision weights + the config they were trained with).

``--config`` and ``key=value`` replace / override the stored config, for inference settings such
as tracker thresholds; the model they describe must still fit the weights (checked). The work is
:func:`tubelet.engine.export.export`.
"""
from __future__ import annotations


def register(sub) -> None:
    # no engine import here: building the parser must not pull in torch
    p = sub.add_parser("export", help="strip a training checkpoint to an inference weights file",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("src", help="training checkpoint, e.g. runs/condinst_track_bench/last.pt")
    p.add_argument("dst", help="weights file to write")
    p.add_argument("--config", default=None,
                   help="replace the stored config with this YAML path or preset")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: fp16)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="overrides of the stored config, e.g. model.greedy.score_thr=0.25")
    p.set_defaults(func=run)
    from tubelet.cli.main import allow_intermixed
    allow_intermixed(p)


def run(args) -> int:
    from tubelet.engine.export import export
    meta = export(args.src, args.dst, half=not args.fp32, config=args.config,
                  overrides=args.overrides)
    print(f"wrote {args.dst} ({meta.get('method')}, step {meta['step']})")
    return 0
