"""``tubelet train --config CFG [key=value ...] [--out DIR] [--resume]`` (also under torchrun)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="train a method (single process or torchrun DDP)",
                       description="Train a method from a YAML config with key=value overrides, "
                                   "e.g. `tubelet train --config condinst_track_bench "
                                   "train.max_iters=2000 model.tracker=memory`. Under "
                                   "`torchrun --nproc_per_node N -m tubelet train ...` it runs DDP.")
    p.add_argument("--config", required=True, help="YAML path or preset name under configs/")
    p.add_argument("--out", default=None, help="run folder (default runs/<config stem>)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (a line per finished video / log period instead)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op CPU threads (default: torch's choice)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=1e-3")
    p.set_defaults(func=run)
    from tubelet.cli.main import allow_intermixed
    allow_intermixed(p)


def run(args) -> int:
    from tubelet.cli.main import set_threads
    set_threads(args.threads)
    import sys
    from pathlib import Path

    from tubelet.engine import dist
    from tubelet.engine.config import load_experiment
    from tubelet.engine.trainer import train
    from tubelet.utils.fileio import check_output_dir
    cfg = load_experiment(args.config, args.overrides)
    out = args.out or str(Path("runs") / Path(args.config).stem)
    check_output_dir(out, "--out")
    try:
        summary = train(cfg, out, resume=args.resume, progress=not args.no_progress)
        main = dist.is_main()  # asked before cleanup: afterwards every rank reads as rank 0
    finally:
        dist.cleanup()
    if main and summary.get("stopped_by"):
        print(f"stopped by {summary['stopped_by']} after step {summary['steps']}: checkpoint "
              f"{out}/last.pt and {out}/summary.json written; continue with --resume",
              file=sys.stderr)
        return 143 if summary["stopped_by"] == "SIGTERM" else 130
    if main:
        msg = f"trained {summary['steps']} steps in {summary['seconds']:.1f} s " \
              f"({summary['images_per_s']:.2f} images/s); checkpoint {out}/last.pt"
        if "eval" in summary and summary["eval"]:
            e = summary["eval"]
            msg += f"; val AP {e['AP']:.4f} AR10 {e['AR10']:.4f}"
        print(msg)
    return 0
