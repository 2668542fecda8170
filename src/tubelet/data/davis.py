"""DAVIS-style PNG masks to YouTube-VIS ground truth.

Layout::

    ROOT/JPEGImages/<res>/<sequence>/00000.jpg
    ROOT/Annotations/<res>/<sequence>/00000.png

``<res>`` is optional (``480p`` in DAVIS). A mask PNG is either binary (values {0, 255} or
{0, 1}: one object), a palette/index image whose value k > 0 marks object k (DAVIS 2017), a
greyscale index image (a few distinct values, each an object), or an RGB image of flat colours
(DAVIS 2017 masks re-saved without their palette: each colour is one object, numbered per sequence
in order of first appearance). Greyscale with many values (anti-aliased binary) is thresholded.
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


MAX_COLOURS = 64  # more distinct colours than this in one RGB mask: not a flat object mask


def _read_index_mask(path: Path, colours: dict[tuple, int] | None = None) -> np.ndarray:
    """``[H, W]`` int object indices (0 = background). ``colours`` maps an RGB colour to its
    object id across the frames of one sequence (filled as new colours appear)."""
    try:
        im = Image.open(path)
        im.load()
    except Exception as exc:  # PIL raises many types for corrupt files (and the bomb guard)
        raise InputError(f"cannot read mask image: {exc}", str(path)) from None
    if im.mode == "P":
        return np.asarray(im, dtype=np.int64)
    if im.mode in ("RGB", "RGBA"):
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)  # [H, W, 3]
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
            return _colour_indices(rgb, path, {} if colours is None else colours)
    arr = np.asarray(im.convert("L"), dtype=np.int64)
    vals = np.unique(arr)
    if set(vals.tolist()) <= {0, 255} or set(vals.tolist()) <= {0, 1}:
        return (arr > 0).astype(np.int64)
    if len(vals) <= MAX_COLOURS:  # a greyscale index image: value k marks object k
        return arr
    # Anti-aliased binary masks: threshold at half range.
    return (arr >= 128).astype(np.int64)


def _colour_indices(rgb: np.ndarray, path: Path, colours: dict[tuple, int]) -> np.ndarray:
    """RGB ``[H, W, 3]`` of flat colours -> ``[H, W]`` object ids (black = background); issue 13:
    these masks used to be converted to grey and thresholded, dropping objects silently."""
    key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # [H, W] packed colour
    vals, inv = np.unique(key, return_inverse=True)
    if len(vals) > MAX_COLOURS + 1:
        raise InputError(f"RGB mask with {len(vals)} colours: expected flat object colours "
                         f"(at most {MAX_COLOURS}); save index/palette PNGs instead", str(path))
    ids = np.zeros(len(vals), np.int64)
    for j, v in enumerate(vals.tolist()):
        if v:
            ids[j] = colours.setdefault((v >> 16, (v >> 8) & 255, v & 255), len(colours) + 1)
    return ids[inv.reshape(key.shape)]


def _frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of a frame, read from its header; an unreadable file is an InputError."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:  # not an image, truncated header, decompression-bomb guard
        raise InputError(f"cannot read frame image: {exc}", str(path)) from None


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
        width, height = _frame_size(frames[0])
        tracks: dict[int, list] = {}
        colours: dict[tuple, int] = {}  # RGB masks: colour -> object id for this sequence
        for t, f in enumerate(frames):
            if t and _frame_size(f) != (width, height):  # one size per video (issue 13)
                w2, h2 = _frame_size(f)
                raise InputError(f"frame size {h2}x{w2} differs from the first frame's "
                                 f"{height}x{width} (HxW)", str(f))
            mpath = ann_dir / name / (f.stem + ".png")
            if not mpath.exists():
                continue  # unannotated frame: null for every object
            idx = _read_index_mask(mpath, colours)
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
