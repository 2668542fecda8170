"""Write a synthetic benchmark to disk in YouTube-VIS format, streaming frame by frame.

Layout::

    OUT_DIR/<split>/JPEGImages/<video_name>/00000.jpg, 00001.jpg, ...
    OUT_DIR/<split>/instances.json

A split is complete exactly when its ``instances.json`` exists: frames are written into a hidden
temporary folder ``OUT_DIR/<split>/.JPEGImages.tmp-*``, which is renamed to ``JPEGImages`` when
the split finishes, and ``instances.json`` is written (atomically) last. Re-running first
removes the old ``instances.json``, so an interrupted run never leaves a split labelled complete
with half its frames. Do not point two writers at the same OUT_DIR at once (each removes the
other's stale temporary folders).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm import tqdm

from tubelet.data.synth.config import SynthConfig, config_dict, validate
from tubelet.data.synth.render import generate_video, video_length
from tubelet.data.synth.shapes import CONFUSABLE_PAIRS, categories_json
from tubelet.errors import InputError
from tubelet.structures.rle import encode_many
from tubelet.utils.fileio import write_json

SPLIT_STRIDE = 1_000_000   # video i of the k-th split is generated with index k * SPLIT_STRIDE + i


def video_index(split_pos: int, i: int) -> int:
    """Generator index of the i-th video of the split at position ``split_pos`` in cfg.splits."""
    return split_pos * SPLIT_STRIDE + i


def video_name(i: int) -> str:
    return f"video_{i:05d}"


def write_dataset(out_dir: str | os.PathLike, cfg: SynthConfig, seed: int,
                  videos: int | None = None, progress: bool = False) -> dict[str, Path]:
    """Generate every split of ``cfg`` under ``out_dir``; return ``{split: path to instances.json}``.

    Args:
        videos: if given, the number of videos of *every* split (replaces ``cfg.split_videos``).
        progress: show a tqdm bar over frames (stderr).
    """
    validate(cfg)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}", None, None, "seed")
    if videos is not None and (isinstance(videos, bool) or int(videos) < 0):
        raise InputError(f"videos must be >= 0, got {videos!r}", None, None, "videos")
    counts = {s: (int(videos) if videos is not None else n) for s, n in cfg.split_counts().items()}
    total = sum(video_length(cfg, seed, video_index(k, i))
                for k, s in enumerate(cfg.splits) for i in range(counts[s]))
    out: dict[str, Path] = {}
    with tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True) as bar:
        for k, split in enumerate(cfg.splits):
            bar.set_description(split)
            out[split] = _write_split(Path(out_dir) / split, cfg, int(seed), k, split,
                                      counts[split], bar)
    return out


def _write_split(split_dir: Path, cfg: SynthConfig, seed: int, split_pos: int, split: str,
                 n_videos: int, bar: tqdm) -> Path:
    split_dir.mkdir(parents=True, exist_ok=True)
    for stale in split_dir.glob(".JPEGImages.tmp-*"):    # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".JPEGImages.tmp-", dir=split_dir))
    try:
        videos, annotations = [], []
        for i in range(n_videos):
            vid, anns = _write_video(tmp, cfg, seed, video_index(split_pos, i), i, bar)
            videos.append(vid)
            for a in anns:
                a["id"] = len(annotations) + 1
                annotations.append(a)
        data = {
            "info": {"description": "tubelet synthetic VIS benchmark", "split": split,
                     "seed": seed, "config": config_dict(cfg),
                     "confusable_pairs": [list(p) for p in CONFUSABLE_PAIRS]},
            "videos": videos, "categories": categories_json(), "annotations": annotations,
        }
        json_path = split_dir / "instances.json"
        json_path.unlink(missing_ok=True)                 # no longer labelled complete
        final = split_dir / "JPEGImages"
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=".JPEGImages.old-", dir=split_dir))
            os.replace(final, old / "x")
            shutil.rmtree(old)
        os.replace(tmp, final)
        write_json(json_path, data)                       # written last: marks completion
        return json_path
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_video(root: Path, cfg: SynthConfig, seed: int, index: int, i: int,
                 bar: tqdm) -> tuple[dict, list[dict]]:
    """Stream one video to ``root/<name>/*.jpg``; return its video record and annotations."""
    name = video_name(i)
    (root / name).mkdir()
    files: list[str] = []
    tracks: dict[int, dict] = {}          # instance_id -> annotation under construction
    for fr in generate_video(cfg, seed, index):
        fname = f"{name}/{fr.index:05d}.jpg"
        Image.fromarray(fr.image).save(root / fname, quality=cfg.jpeg_quality)
        files.append(fname)
        present = [(iid, m) for iid, _, m in fr.instances if m is not None]
        rles = encode_many(np.stack([m for _, m in present])) if present else []
        by_id = {iid: r for (iid, _), r in zip(present, rles)}
        for iid, cid, _ in fr.instances:
            tr = tracks.setdefault(iid, {"category_id": cid, "segmentations": [], "areas": [],
                                         "bboxes": []})
            r = by_id.get(iid)
            tr["segmentations"].append(r)
            tr["areas"].append(None if r is None else float(mask_utils.area(r)))
            tr["bboxes"].append(None if r is None else [float(x) for x in mask_utils.toBbox(r)])
        bar.update(1)
    vid = {"id": i + 1, "width": cfg.width, "height": cfg.height, "length": len(files),
           "file_names": files}
    anns = [{"id": 0, "video_id": i + 1, "category_id": tr["category_id"], "iscrowd": 0,
             "height": cfg.height, "width": cfg.width, "length": len(files),
             "segmentations": tr["segmentations"], "areas": tr["areas"], "bboxes": tr["bboxes"]}
            for iid, tr in sorted(tracks.items()) if any(s is not None for s in tr["segmentations"])]
    return vid, anns
