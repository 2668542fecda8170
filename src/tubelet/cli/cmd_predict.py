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
                   help="checkpoint or state dict (default: the bundled synthetic-benchmark model)")
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
    from tubelet.cli.main import set_threads
    set_threads(args.threads)
    from tubelet.errors import InputError
    from tubelet.utils.fileio import check_output_dir
    if args.max_videos < 0:
        raise InputError(f"must be >= 0 (0 = all videos), got {args.max_videos}",
                         field="--max-videos")
    check_output_dir(args.out, "--out")  # before the model is even loaded
    from tubelet.engine.loading import bundled_weights, load_method
    from tubelet.engine.predict import predict_to_folder
    weights = args.weights
    if args.method is not None:
        if weights is not None:
            raise InputError("give --method or --weights, not both", field="--method")
        weights = str(bundled_weights(args.method))
    model, _ = load_method(args.config, weights, args.overrides)
    predict_to_folder(model, args.source, args.out, max_videos=args.max_videos,
                      overlay=args.overlay, png=args.png, progress=not args.no_progress)
    return 0
