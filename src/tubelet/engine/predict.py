"""Streaming prediction over a video, a frames folder or a whole dataset (sharded under torchrun).

Every method is driven through the same ``predict_video`` call with a video source that has a
length, a size, iteration and random access (``video[t]``, decoded on demand through a bounded
cache), so nothing here depends on which method runs, online or offline. Results are kept as RLE.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import torch
from tqdm import tqdm

from tubelet.data.ytvis import YTVISDataset, load_ytvis
from tubelet.engine import dist
from tubelet.errors import InputError
from tubelet.utils.fileio import check_output_dir, inside, remove_stale_temps, write_json
from tubelet.video import DatasetVideo


#: written last into a ``tubelet predict`` output folder: its absence marks an incomplete run
DONE = "done.json"


def dataset_video(gt: YTVISDataset, video_id: int, image_root: str | Path) -> DatasetVideo:
    """The frames of one dataset video as a random-access source (each frame size-checked)."""
    v = gt.videos[video_id]
    names = v.file_names or [f"{v.name}/{t:05d}.jpg" for t in range(v.length)]
    # file names are checked at load (no '..', not absolute); `inside` also stops symlinks
    return DatasetVideo([inside(image_root, n) for n in names], (v.height, v.width), name=v.name)


@torch.inference_mode()
def predict_records(model, gt: YTVISDataset, image_root: str | Path, video_ids: Iterable[int],
                    progress: bool = True, log=None) -> list[dict]:
    """Results records for ``video_ids`` (this process's share when sharded by the caller);
    ``log(msg)`` (if given) is called once per finished video."""
    model.eval()
    records: list[dict] = []
    ids = list(video_ids)
    for i, vid in enumerate(tqdm(ids, disable=not progress, desc="predict", dynamic_ncols=True)):
        t0 = time.time()
        with dataset_video(gt, vid, image_root) as video:
            result = model.predict_video(video).result()
        records.extend(result.to_results(vid))
        if log is not None:
            log(f"video {i + 1}/{len(ids)} (id {vid}, {result.length} frames) in "
                f"{time.time() - t0:.1f} s")
    return records


def predict_dataset(model, gt: YTVISDataset, image_root: str | Path, max_videos: int = 0,
                    progress: bool = True, log=None) -> list[dict] | None:
    """Predict every video, sharded over torchrun processes (video i goes to rank i % world);
    the merged records are returned on rank 0 (None elsewhere)."""
    ids = first_videos(gt, max_videos)
    mine = ids[dist.rank()::dist.world_size()]
    recs = predict_records(model, gt, image_root, mine, progress and dist.is_main(),
                           log if dist.is_main() else None)
    parts = dist.all_gather_object(recs)
    if not dist.is_main():
        return None
    return [r for p in parts for r in p]


def first_videos(gt: YTVISDataset, max_videos: int = 0) -> list[int]:
    """The ids of the first ``max_videos`` videos (all when 0); a negative count is an error."""
    if max_videos < 0:
        raise InputError(f"must be >= 0, got {max_videos}", field="max_videos")
    ids = sorted(gt.videos)
    return ids[:max_videos] if max_videos else ids


def evaluate_dataset(model, gt_json: str, image_root: str, max_videos: int = 0,
                     progress: bool = True) -> dict | None:
    """Predict and score a dataset with the project's evaluator (rank 0 gets the metrics)."""
    from tubelet.eval import evaluate
    gt = load_ytvis(gt_json)
    gt = gt.subset(first_videos(gt, max_videos))
    recs = predict_dataset(model, gt, image_root, 0, progress)
    if recs is None:
        return None
    return evaluate(gt, recs)


def source_kind(src: Path) -> str:
    """"dataset" (a folder with instances.json + JPEGImages/), "frames" (a folder) or "video"."""
    if not src.exists():
        raise InputError("source not found", str(src))
    if src.is_dir():
        return "dataset" if (src / "instances.json").exists() and (src / "JPEGImages").is_dir() \
            else "frames"
    return "video"


def predict_to_folder(model, source: str | Path, out: str | Path, *, max_videos: int = 0,
                      overlay: bool = False, png: bool = False, progress: bool = True,
                      echo=print) -> dict:
    """``tubelet predict``: stream ``source`` (a video file, a frames folder, or a dataset folder,
    which is also scored) through ``model`` and write ``results.json`` (+ ``metrics.json`` for a
    dataset, ``categories.json`` otherwise, overlays / PNGs on request) under ``out``, then
    ``done.json`` (the returned summary) last: a folder without it holds an incomplete run.
    An identical rerun replaces the outputs (and the temporaries a killed run left behind).
    Returns a summary dict (frames, seconds, metrics when scored)."""
    from tubelet.data.ytvis import save_results
    from tubelet.video import open_video
    src, out = Path(source), Path(out)
    kind = source_kind(src)
    check_output_dir(out)  # before any inference (issue 13)
    if dist.is_main():
        for folder in (out, out / "png"):
            remove_stale_temps(folder)
        (out / DONE).unlink(missing_ok=True)  # from here on the folder is incomplete
    names = {c: n for c, n in model.categories}
    t0 = time.time()
    if kind == "dataset":
        gt = load_ytvis(src / "instances.json")
        ids = first_videos(gt, max_videos)
        recs = predict_dataset(model, gt, src / "JPEGImages", max_videos, progress,
                               log=None if progress else echo)
        dist.cleanup()
        if recs is None:
            return {}
        save_results(out / "results.json", recs)
        from tubelet.eval import evaluate
        metrics = evaluate(gt.subset(ids), recs)
        frames = sum(gt.videos[i].length for i in ids)
        dt = time.time() - t0
        write_json(out / "metrics.json", dict(metrics), indent=1)
        echo(f"{len(ids)} videos, {frames} frames in {dt:.1f} s ({frames / dt:.2f} frames/s); "
             f"AP {metrics['AP']:.4f} AP50 {metrics['AP50']:.4f} AR10 {metrics['AR10']:.4f}; "
             f"wrote {out / 'results.json'}")
        if overlay or png:
            from tubelet.structures import VideoInstances
            for vid in ids:
                v = gt.videos[vid]
                mine = [r for r in recs if r["video_id"] == vid]
                video = VideoInstances.from_results(mine, v.height, v.width, v.length)
                with dataset_video(gt, vid, src / "JPEGImages") as frames_src:
                    _render(frames_src, video, names,
                            inside(out, f"{v.name}.mp4") if overlay else None,
                            inside(out, "png", v.name) if png else None, progress)
        write_json(out / DONE, {"frames": frames, "seconds": dt, "metrics": dict(metrics)},
                   indent=1)
        return {"frames": frames, "seconds": dt, "metrics": metrics}
    with open_video(src) as video_src:
        video = model.predict_video(video_src).result()
    n, dt = video.length, time.time() - t0
    save_results(out / "results.json", video.to_results(1))
    write_json(out / "categories.json", [{"id": c, "name": n_} for c, n_ in model.categories])
    echo(f"{src.name}: {n} frames in {dt:.1f} s ({n / dt:.2f} frames/s), {len(video)} "
         f"records; wrote {out / 'results.json'}")
    if overlay or png:
        with open_video(src) as video_src:
            _render(video_src, video, names,
                    inside(out, f"{video_src.name}.mp4") if overlay else None,
                    out / "png" if png else None, progress)
    summary = {"frames": n, "seconds": dt}
    write_json(out / DONE, summary, indent=1)
    return summary


def _render(source, video, names, out_mp4, png_dir, progress) -> None:
    from tubelet.video.render import render_video
    # The renderer draws track id k with colour k and PNG value k, so ids must be >= 1.
    if len(video) and video.track_ids.min() < 1:
        video = video[:]  # a copy sharing the masks
        video.track_ids = video.track_ids - video.track_ids.min() + 1
    render_video(source, video, names, out_mp4=out_mp4, png_dir=png_dir, progress=progress,
                 replace=True)  # predict owns --out: an identical rerun replaces its PNGs
