"""The body of ``tubelet predict``: load a method, stream a source through it, write outputs."""
from __future__ import annotations

import json
import time
from pathlib import Path

from tubelet.engine import dist
from tubelet.engine.checkpoint import load_checkpoint
from tubelet.engine.config import experiment_from_dict, load_experiment
from tubelet.engine.registry import build_method
from tubelet.errors import InputError
from tubelet.utils.config import apply_overrides
from tubelet.utils.fileio import write_json

BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "condinst_track_synth.pt"


def load_method(config: str | None, weights: str | None, overrides=(), fuse: bool = True):
    """Build the method from ``config`` (or the config saved with ``weights``) and load weights;
    ``fuse`` folds BatchNorm into convolutions for inference (see ``VISMethod.fuse_for_inference``)."""
    wpath = Path(weights) if weights else BUNDLED
    if not wpath.exists():
        raise InputError("weights not found" + ("" if weights else " (the bundled model is "
                         "missing from this install; pass --weights)"), str(wpath))
    ck = load_checkpoint(wpath)
    meta = ck.get("meta", {}) if isinstance(ck, dict) else {}
    if config:
        cfg = load_experiment(config, overrides)
    elif "config" in meta:
        cfg = experiment_from_dict(json.loads(meta["config"]), f"{wpath} (stored config)")
        cfg = apply_overrides(cfg, list(overrides), "command line") if overrides else cfg
    else:
        raise InputError("the weights file holds no config; pass --config", str(wpath))
    model = build_method(cfg.method, cfg.model)
    state = ck.get("model", ck)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"weights do not fit the {cfg.method} model: {str(exc)[:400]}",
                         str(wpath)) from None
    if meta.get("categories"):
        model.set_categories([tuple(c) for c in meta["categories"]])
    model.eval()
    if fuse:
        model.fuse_for_inference()
    return model, cfg


def _source_kind(src: Path) -> str:
    if not src.exists():
        raise InputError("source not found", str(src))
    if src.is_dir():
        return "dataset" if (src / "instances.json").exists() and (src / "JPEGImages").is_dir() \
            else "frames"
    return "video"


def predict_main(args) -> int:
    from tubelet.data.ytvis import load_ytvis, save_results
    from tubelet.engine.predict import predict_dataset
    from tubelet.video import open_video
    from tubelet.video.render import render_video

    model, cfg = load_method(args.config, args.weights, args.overrides)
    src = Path(args.source)
    kind = _source_kind(src)
    out = Path(args.out)
    names = {c: n for c, n in model.categories}
    t0 = time.time()
    if kind == "dataset":
        gt = load_ytvis(src / "instances.json")
        recs = predict_dataset(model, gt, src / "JPEGImages", args.max_videos,
                               progress=not args.no_progress)
        dist.cleanup()
        if recs is None:
            return 0
        save_results(out / "results.json", recs)
        from tubelet.eval import evaluate
        ids = sorted(gt.videos)[: args.max_videos] if args.max_videos else sorted(gt.videos)
        sub = _subset(gt, ids)
        metrics = evaluate(sub, recs)
        frames = sum(gt.videos[i].length for i in ids)
        dt = time.time() - t0
        write_json(out / "metrics.json", {k: v for k, v in metrics.items()}, indent=1)
        print(f"{len(ids)} videos, {frames} frames in {dt:.1f} s ({frames / dt:.2f} frames/s); "
              f"AP {metrics['AP']:.4f} AP50 {metrics['AP50']:.4f} AR10 {metrics['AR10']:.4f}; "
              f"wrote {out / 'results.json'}")
        if args.overlay or args.png:
            for vid in ids:
                v = gt.videos[vid]
                video = _for_render(_video_from_records(recs, vid, v.height, v.width, v.length))
                with open_video(src / "JPEGImages" / v.name) as source:
                    render_video(source, video, names,
                                 out_mp4=out / f"{v.name}.mp4" if args.overlay else None,
                                 png_dir=out / "png" / v.name if args.png else None,
                                 progress=not args.no_progress)
        return 0
    with open_video(src) as source:
        video = model.predict_video(iter(source)).result()
        n = video.length
    dt = time.time() - t0
    save_results(out / "results.json", video.to_results(1))
    write_json(out / "categories.json", [{"id": c, "name": n_} for c, n_ in model.categories])
    print(f"{src.name}: {n} frames in {dt:.1f} s ({n / dt:.2f} frames/s), {len(video)} "
          f"records; wrote {out / 'results.json'}")
    if args.overlay or args.png:
        with open_video(src) as source:
            render_video(source, _for_render(video), names,
                         out_mp4=out / f"{source.name}.mp4" if args.overlay else None,
                         png_dir=out / "png" if args.png else None, progress=not args.no_progress)
    return 0


def _subset(gt, ids):
    from tubelet.data.ytvis import YTVISDataset
    keep = set(ids)
    return YTVISDataset({k: v for k, v in gt.videos.items() if k in keep}, gt.categories,
                        [a for a in gt.annotations if a.video_id in keep], gt.path, gt.info)


def _video_from_records(recs, vid, h, w, length):
    from tubelet.structures import VideoInstances
    mine = [r for r in recs if r["video_id"] == vid]
    return VideoInstances.from_results(mine, h, w, length)


def _for_render(video):
    """The renderer draws track id k with colour k and PNG value k, so ids must be >= 1."""
    if len(video) and video.track_ids.min() < 1:
        video = video[:]  # a copy sharing the masks
        video.track_ids = video.track_ids - video.track_ids.min() + 1
    return video
