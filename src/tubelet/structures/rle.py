"""COCO run-length encoding helpers (thin, typed wrappers over pycocotools).

Every RLE in tubelet is a *compressed* COCO RLE dict ``{"size": [H, W], "counts": str}``: JSON-ready
and accepted as is by ``pycocotools.mask``. Uncompressed RLE (``counts`` a list of ints, as in the
official YouTube-VIS ground truth) and polygons are converted on load by :func:`to_rle`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

RLE = dict  # {"size": [H, W], "counts": str}
AREA_CHUNK = 255  # largest list pycocotools.mask.area accepts under numpy 2


def encode(mask: np.ndarray) -> RLE:
    """Encode one binary mask ``[H, W]`` (bool or {0,1}) as a compressed RLE."""
    m = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    if m.ndim != 2:
        raise ValueError(f"encode expects a 2-D mask, got shape {m.shape}")
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def encode_many(masks: np.ndarray) -> list[RLE]:
    """Encode ``[N, H, W]`` binary masks; one call into C for the whole stack.

    pycocotools reads an ``[H, W, N]`` Fortran-ordered array, i.e. each mask stored column by
    column: masks laid out that way (``[N, W, H]`` memory seen as ``[N, H, W]``, as
    :func:`tubelet.models.condinst.postprocess.paste_masks` writes them) are encoded without a
    copy; any other layout is copied once."""
    m = np.asarray(masks)
    m = m.view(np.uint8) if m.dtype == bool else np.asarray(m, dtype=np.uint8)
    if m.ndim != 3:
        raise ValueError(f"encode_many expects [N, H, W], got shape {m.shape}")
    if m.shape[0] == 0:
        return []
    f = m.transpose(1, 2, 0)  # [H, W, N]
    rles = mask_utils.encode(f if f.flags.f_contiguous else np.asfortranarray(f))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def decode(rle: RLE) -> np.ndarray:
    """Decode one RLE to a ``[H, W]`` uint8 mask."""
    return mask_utils.decode(rle)


def decode_many(rles: Sequence[RLE | None], height: int, width: int) -> np.ndarray:
    """Decode a list of RLEs (``None`` = empty) to ``[N, H, W]`` bool."""
    out = np.zeros((len(rles), height, width), dtype=bool)
    idx = [i for i, r in enumerate(rles) if r is not None]
    if idx:
        dec = mask_utils.decode([rles[i] for i in idx])  # [H, W, n]
        out[idx] = dec.transpose(2, 0, 1).astype(bool)
    return out


def area(rles: RLE | Sequence[RLE]) -> np.ndarray | int:
    """Foreground pixel count of one RLE (int) or a list of RLEs (``[N]`` int64)."""
    if isinstance(rles, dict):
        return int(mask_utils.area(rles))
    rles = list(rles)
    out = np.zeros(len(rles), dtype=np.int64)
    # pycocotools.mask.area overflows (OverflowError) on lists of 256 or more RLEs under numpy 2
    # (it builds a uint8 array holding the count); call it in chunks of at most 255.
    for i in range(0, len(rles), AREA_CHUNK):
        out[i:i + AREA_CHUNK] = mask_utils.area(rles[i:i + AREA_CHUNK])
    return out


def empty_rle(height: int, width: int) -> RLE:
    return encode(np.zeros((height, width), dtype=np.uint8))


def to_rle(seg: Any, height: int, width: int) -> RLE | None:
    """Convert a YouTube-VIS segmentation (compressed RLE, uncompressed RLE, polygon list or
    ``None``) to a compressed RLE. Raises ``ValueError`` on an unreadable value; the caller adds
    the file/record/field to the message.
    """
    if seg is None:
        return None
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise ValueError("RLE needs 'size' and 'counts'")
        size = seg["size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2):
            raise ValueError(f"RLE 'size' must be [height, width], got {size!r}")
        counts = seg["counts"]
        if isinstance(counts, list):  # uncompressed
            if sum(counts) != size[0] * size[1]:
                raise ValueError(f"uncompressed RLE counts sum to {sum(counts)}, "
                                 f"expected {size[0]}x{size[1]}={size[0] * size[1]}")
            rle = mask_utils.frPyObjects(seg, size[0], size[1])
            rle["counts"] = rle["counts"].decode("ascii")
            return {"size": [int(size[0]), int(size[1])], "counts": rle["counts"]}
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        if not isinstance(counts, str):
            raise ValueError(f"RLE 'counts' must be a string or a list, got {type(counts).__name__}")
        return {"size": [int(size[0]), int(size[1])], "counts": counts}
    if isinstance(seg, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
        if not polys:
            if all(isinstance(p, list) for p in seg):
                return encode(np.zeros((height, width), dtype=np.uint8))
            raise ValueError("polygon must be a list of coordinate lists")
        rles = mask_utils.frPyObjects(polys, height, width)
        rle = mask_utils.merge(rles)
        rle["counts"] = rle["counts"].decode("ascii")
        return rle
    raise ValueError(f"unknown segmentation type {type(seg).__name__}")
