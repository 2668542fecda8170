"""``tubelet predict``: run any method on a video, a frames folder or a dataset, streaming."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict a video, frames folder or dataset with any method",
                       description="SOURCE is a video file, a folder of frames, or a dataset "
                                   "folder holding instances.json and JPEGImages/ (then the "
                                   "results are also scored). Runs sharded under torchrun.")
    p.add_argument("--config", default=None,
                   help="YAML path or preset (default: the config stored in the weights file)")
    p.add_argument("--weights", default=None,
                   help="checkpoint or exported weights file (default: a bundled model, --model)")
    p.add_argument("--model", default=None,
                   help="bundled model: objects (real footage, class-agnostic, trained on DAVIS) "
                        "or synth (the synthetic benchmark's 10 shapes). Default: synth for a "
                        "dataset written by `tubelet synth`, objects for anything else")
    p.add_argument("--method", default=None,
                   help="use this method's bundled weights (e.g. contrastive-online, "
                        "iai-condinst, yolov4-seg); instead of --weights")
    p.add_argument("--source", required=True)
    p.add_argument("--out", default="predict_out", help="output folder")
    p.add_argument("--overlay", action="store_true", help="also write an overlay mp4 per video")
    p.add_argument("--png", action="store_true", help="also write per-frame track-id PNGs")
    p.add_argument("--max-videos", type=int, default=0, help="dataset: first N videos only")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (a line per finished video / log period instead)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op CPU threads (default: torch's choice)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. model.tracker=memory)")
    p.set_defaults(func=run)
    from tubelet.cli.main import allow_intermixed
    allow_intermixed(p)


def run(args) -> int:
    import sys
    from pathlib import Path
    from tubelet.cli.main import set_threads
    set_threads(args.threads)
    from tubelet.errors import InputError
    from tubelet.utils.fileio import check_output_dir
    if args.max_videos < 0:
        raise InputError(f"must be >= 0 (0 = all videos), got {args.max_videos}",
                         field="--max-videos")
    check_output_dir(args.out, "--out")  # before the model is even loaded
    from tubelet.engine.loading import bundled_model, bundled_weights, default_model, load_method
    from tubelet.engine.predict import predict_to_folder, source_kind
    given = [f for f, v in (("--weights", args.weights), ("--method", args.method),
                            ("--model", args.model)) if v is not None]
    if len(given) > 1:
        raise InputError(f"give one of --weights, --method, --model (got {', '.join(given)})",
                         field=given[1])
    source_kind(Path(args.source))  # a missing source is reported before the model is loaded
    weights, name = args.weights, None
    if args.method is not None:
        weights = str(bundled_weights(args.method))
    elif weights is None:
        name = args.model or default_model(args.source)
        weights = str(bundled_model(name))
    model, _ = load_method(args.config, weights, args.overrides)
    predict_to_folder(model, args.source, args.out, max_videos=args.max_videos,
                      overlay=args.overlay, png=args.png, progress=not args.no_progress)
    if name is not None and args.model is None:  # after the work: an error stays one line
        print(f"model: {name} (bundled, chosen for this source; --model objects|synth to "
              f"choose)", file=sys.stderr)
    return 0
