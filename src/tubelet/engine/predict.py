"""Streaming prediction over a video, a frames folder or a whole dataset (sharded under torchrun).

Every method is driven through the same ``predict_video`` call, so nothing here depends on which
method runs. Frames are decoded one at a time; results are kept as RLE.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from tubelet.data.clips import read_image
from tubelet.data.ytvis import YTVISDataset, load_ytvis
from tubelet.engine import dist
from tubelet.errors import InputError


def dataset_frames(gt: YTVISDataset, video_id: int, image_root: str | Path) -> Iterator[np.ndarray]:
    """Lazily read the frames of one dataset video (RGB uint8 [H, W, 3])."""
    v = gt.videos[video_id]
    names = v.file_names or [f"{v.name}/{t:05d}.jpg" for t in range(v.length)]
    for name in names:
        img = read_image(Path(image_root) / name)
        if img.shape[:2] != (v.height, v.width):
            raise InputError(f"frame size {img.shape[0]}x{img.shape[1]} differs from video size "
                             f"{v.height}x{v.width}", str(Path(image_root) / name))
        yield img


@torch.inference_mode()
def predict_records(model, gt: YTVISDataset, image_root: str | Path, video_ids: Iterable[int],
                    progress: bool = True) -> list[dict]:
    """Results records for ``video_ids`` (this process's share when sharded by the caller)."""
    model.eval()
    records: list[dict] = []
    ids = list(video_ids)
    for vid in tqdm(ids, disable=not progress, desc="predict", dynamic_ncols=True):
        video = model.predict_video(dataset_frames(gt, vid, image_root)).result()
        records.extend(video.to_results(vid))
    return records


def predict_dataset(model, gt: YTVISDataset, image_root: str | Path, max_videos: int = 0,
                    progress: bool = True) -> list[dict] | None:
    """Predict every video, sharded over torchrun processes (video i goes to rank i % world);
    the merged records are returned on rank 0 (None elsewhere)."""
    ids = sorted(gt.videos)
    if max_videos:
        ids = ids[:max_videos]
    mine = ids[dist.rank()::dist.world_size()]
    recs = predict_records(model, gt, image_root, mine, progress and dist.is_main())
    parts = dist.all_gather_object(recs)
    if not dist.is_main():
        return None
    return [r for p in parts for r in p]


def evaluate_dataset(model, gt_json: str, image_root: str, max_videos: int = 0,
                     progress: bool = True) -> dict | None:
    """Predict and score a dataset with the project's evaluator (rank 0 gets the metrics)."""
    from tubelet.eval import evaluate
    gt = load_ytvis(gt_json)
    if max_videos:
        keep = set(sorted(gt.videos)[:max_videos])
        gt = YTVISDataset({k: v for k, v in gt.videos.items() if k in keep}, gt.categories,
                          [a for a in gt.annotations if a.video_id in keep], gt.path, gt.info)
    recs = predict_dataset(model, gt, image_root, 0, progress)
    if recs is None:
        return None
    return evaluate(gt, recs)
