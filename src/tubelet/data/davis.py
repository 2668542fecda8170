"""DAVIS-style PNG masks to YouTube-VIS ground truth.

Layout::

    ROOT/JPEGImages/<res>/<sequence>/00000.jpg
    ROOT/Annotations/<res>/<sequence>/00000.png

``<res>`` is optional (``480p`` in DAVIS). A mask PNG is either binary (values {0, 255} or
{0, 1}: one object) or a palette/index image whose value k > 0 marks object k (DAVIS 2017).
Each (sequence, object) becomes one YouTube-VIS annotation of a single category ``object``
(class-agnostic); frames where the object is absent are ``null``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from tubelet.errors import InputError
from tubelet.structures.rle import area, encode
from tubelet.data.ytvis import bbox_of

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _find_dirs(root: Path) -> tuple[Path, Path]:
    img, ann = root / "JPEGImages", root / "Annotations"
    if not img.is_dir() or not ann.is_dir():
        raise InputError("expected JPEGImages/ and Annotations/ folders", str(root))
    subs = [d for d in img.iterdir() if d.is_dir()]
    # DAVIS puts a resolution folder (480p, Full-Resolution) between JPEGImages and sequences.
    if len(subs) >= 1 and all(not any(f.is_file() for f in d.iterdir()) for d in subs):
        res = "480p" if (img / "480p").is_dir() else sorted(d.name for d in subs)[0]
        img, ann = img / res, ann / res
    return img, ann


def _read_index_mask(path: Path) -> np.ndarray:
    """``[H, W]`` int object indices (0 = background)."""
    try:
        im = Image.open(path)
        im.load()
    except Exception as exc:  # PIL raises many types for corrupt files
        raise InputError(f"cannot read mask image: {exc}", str(path)) from None
    if im.mode == "P":
        return np.asarray(im, dtype=np.int64)
    arr = np.asarray(im.convert("L"), dtype=np.int64)
    vals = np.unique(arr)
    if set(vals.tolist()) <= {0, 255} or set(vals.tolist()) <= {0, 1}:
        return (arr > 0).astype(np.int64)
    # Anti-aliased binary masks: threshold at half range.
    return (arr >= 128).astype(np.int64)


def import_davis(root: str | os.PathLike, sequences: list[str] | None = None) -> dict:
    """Build a YouTube-VIS ground-truth dict from a DAVIS-style folder."""
    root = Path(root)
    if not root.exists():
        raise InputError("folder not found", str(root))
    img_dir, ann_dir = _find_dirs(root)
    names = sorted(d.name for d in img_dir.iterdir() if d.is_dir())
    if sequences is not None:
        unknown = sorted(set(sequences) - set(names))
        if unknown:
            raise InputError(f"unknown sequence(s) {unknown}", str(img_dir))
        names = [n for n in names if n in set(sequences)]
    if not names:
        raise InputError("no sequences found", str(img_dir))
    videos, annotations = [], []
    for vid, name in enumerate(names, start=1):
        frames = sorted(f for f in (img_dir / name).iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not frames:
            raise InputError("no frames", str(img_dir / name))
        with Image.open(frames[0]) as im0:
            width, height = im0.size
        tracks: dict[int, list] = {}
        for t, f in enumerate(frames):
            mpath = ann_dir / name / (f.stem + ".png")
            if not mpath.exists():
                continue  # unannotated frame: null for every object
            idx = _read_index_mask(mpath)
            if idx.shape != (height, width):
                raise InputError(f"mask size {idx.shape[0]}x{idx.shape[1]} differs from frame size "
                                 f"{height}x{width}", str(mpath))
            for k in np.unique(idx):
                if k == 0:
                    continue
                tracks.setdefault(int(k), [None] * len(frames))[t] = encode(idx == k)
        videos.append({"id": vid, "width": width, "height": height, "length": len(frames),
                       "file_names": [f"{name}/{f.name}" for f in frames]})
        for k in sorted(tracks):
            segs = tracks[k]
            areas = [None if s is None else float(area(s)) for s in segs]
            annotations.append({"id": len(annotations) + 1, "video_id": vid, "category_id": 1,
                                "segmentations": segs, "areas": areas, "iscrowd": 0,
                                "bboxes": [bbox_of(s) for s in segs]})
    return {"info": {"description": f"imported from {root}"},
            "videos": videos, "categories": [{"id": 1, "name": "object"}],
            "annotations": annotations}
