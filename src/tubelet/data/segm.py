"""Check and normalise segmentation entries: the one place tubelet reads a mask from JSON.

An entry is ``None`` (no mask in this frame), an RLE ``{"size": [H, W], "counts": str | [int]}``
or a polygon list ``[[x1, y1, x2, y2, ...], ...]``. :func:`check_segmentation` returns a
compressed RLE (``counts`` a str) or None, or raises :class:`~tubelet.errors.InputError` naming
the file, the record and the field. Ground truth, results, proposals and detections all go
through it, so a mask is accepted (or refused) the same way everywhere.

What is checked, and why pycocotools cannot be left to do it:

- ``size``: two positive ints (``4.5``, ``True`` or ``"4"`` are refused), each at most
  :data:`MAX_SIDE`, and equal to the expected frame size when there is one.
- uncompressed ``counts`` (a list): non-negative ints summing to H*W.
- compressed ``counts`` (a str) are *decoded*: only characters of the COCO alphabet ``'0'..'o'``,
  no unfinished run at the end, no negative run, runs summing to H*W. pycocotools checks none of
  this: a string summing to less than H*W decodes to a mask with uninitialised pixels, and its
  area/IoU functions return numbers for any string at all.
- polygons: numbers, finite, an even count; a polygon reaching more than a frame size outside
  the frame is clipped to that margin first, because the rasteriser holds 5x coordinates in C
  ints and walks every 1/5 pixel of every edge (a vertex at 1e12 would ask for terabytes).

Decoding every string is vectorised (:class:`~tubelet.data.rle_counts.RleCountsCheck`): the
strings of many records are joined and decoded in one numpy pass, and a string seen before
(records often share masks) is not decoded again.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from pycocotools import mask as mask_utils

from tubelet.data.rle_counts import RleCountsCheck, counts_problem
from tubelet.errors import InputError

MAX_SIDE = 16384  # largest frame side accepted (16K video); bigger sizes are typos or garbage


# ----------------------------------------------------------------------------- sizes
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_INT = {int}


def check_frame_size(height: Any, width: Any, path: str | None = None, record: str | None = None,
                     fld: str | None = None) -> tuple[int, int]:
    """A frame size: two positive ints, each at most :data:`MAX_SIDE`. Returns ``(H, W)``."""
    if not (_is_int(height) and _is_int(width)) or height <= 0 or width <= 0:
        raise InputError(f"frame size must be two positive ints, got {height!r}x{width!r} (HxW)",
                         path, record, fld)
    if height > MAX_SIDE or width > MAX_SIDE:
        raise InputError(f"frame size {height}x{width} (HxW) exceeds {MAX_SIDE} per side",
                         path, record, fld)
    return height, width


def _rle_size(size: Any, path, record, fld) -> tuple[int, int]:
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise InputError(f"unreadable mask: RLE 'size' must be [height, width], got {size!r}",
                         path, record, fld)
    return check_frame_size(size[0], size[1], path, record, fld)


# ----------------------------------------------------------------------------- polygons
def _clip_polygon(xy: list[float], x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """Sutherland-Hodgman clip of one polygon ``[x1, y1, x2, y2, ...]`` to a box.

    Intersections are computed in exact rationals (coordinates may be 1e300: a float difference
    of two of them overflows), then rounded once.
    """
    from fractions import Fraction  # here: only absurd polygons need it (a 7 ms import)

    pts = [(Fraction(x), Fraction(y)) for x, y in zip(xy[0::2], xy[1::2])]
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        b = Fraction(bound)
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            cur_in = cur[axis] >= b if keep_above else cur[axis] <= b
            prev_in = prev[axis] >= b if keep_above else prev[axis] <= b
            if cur_in != prev_in:  # the edge crosses the boundary: add the crossing point
                t = (b - prev[axis]) / (cur[axis] - prev[axis])
                o = 1 - axis
                cross = [b, b]
                cross[o] = prev[o] + t * (cur[o] - prev[o])
                out.append((cross[0], cross[1]))
            if cur_in:
                out.append(cur)
        pts = out
        if not pts:
            break
    return [float(c) for p in pts for c in p]


def _polygons_to_rle(seg: list, height: int, width: int, path, record, fld) -> dict:
    polys, margin = [], max(height, width)
    for j, p in enumerate(seg):
        if not isinstance(p, list):
            raise InputError(f"unreadable mask: polygon {j} is a {type(p).__name__}, expected a "
                             "list of coordinates", path, record, fld)
        if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p):
            raise InputError(f"unreadable mask: polygon {j} holds a non-number", path, record, fld)
        if not all(math.isfinite(c) for c in p):
            raise InputError(f"unreadable mask: polygon {j} has a non-finite coordinate",
                             path, record, fld)
        if len(p) % 2:
            raise InputError(f"unreadable mask: polygon {j} has an odd number of coordinates "
                             f"({len(p)})", path, record, fld)
        if len(p) < 6:
            continue  # fewer than three points: no area (as pycocotools' loaders skip them)
        # Within one frame size of the frame a polygon goes to pycocotools as it is (its
        # rasteriser rounds every edge to 1/5 pixel, so clipping would move a few edge pixels);
        # beyond, it is clipped to that margin: pycocotools stores 5x coordinates in C ints and
        # allocates a point per 1/5 pixel of every edge (a vertex at 1e12 asks for terabytes).
        xs, ys = p[0::2], p[1::2]
        x0, y0, x1, y1 = -margin, -margin, width + margin, height + margin
        if min(xs) < x0 or min(ys) < y0 or max(xs) > x1 or max(ys) > y1:
            p = _clip_polygon(p, x0, y0, x1, y1)
            if len(p) < 6:
                continue  # entirely outside the frame
        polys.append([float(c) for c in p])
    if not polys:
        return {"size": [height, width], "counts": _empty_counts(height, width)}
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _empty_counts(height: int, width: int) -> str:
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": [height * width]},
                                 height, width)
    return rle["counts"].decode("ascii")


# ----------------------------------------------------------------------------- entries
def check_segmentation(seg: Any, size: tuple[int, int] | None, path: str | None = None,
                       record: str | None = None, fld: str | None = None, *,
                       size_of: str | None = None,
                       counts_check: RleCountsCheck | None = None) -> dict | None:
    """Check one segmentation entry and return it as a compressed RLE (or None).

    Args:
        seg: None, an RLE dict (``counts`` a str, bytes or list of ints) or a polygon list.
        size: the expected frame size ``(H, W)``, checked with :func:`check_frame_size` by the
            caller; None = unknown (the RLE's own size is checked and used; a polygon then
            cannot be read).
        path, record, fld: where the entry is, for error messages.
        size_of: what ``size`` belongs to, for the mismatch message (default "the frame size HxW").
        counts_check: queue the decode check of a compressed string here (checked when it is
            flushed) instead of decoding it now.
    Returns:
        ``{"size": [H, W], "counts": str}`` (a new dict) or None.
    Raises:
        InputError: for anything listed in the module docstring, naming path, record and field.
    """
    if seg is None:
        return None
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise InputError("unreadable mask: RLE needs 'size' and 'counts'", path, record, fld)
        sz = seg["size"]
        if not (type(sz) is list and len(sz) == 2 and size is not None  # fast path: the norm
                and sz[0] == size[0] and sz[1] == size[1]
                and type(sz[0]) is int and type(sz[1]) is int):
            h, w = _rle_size(sz, path, record, fld)
            if size is not None and (h, w) != tuple(size):
                where = size_of or f"the frame size {size[0]}x{size[1]}"
                raise InputError(f"mask size {h}x{w} differs from {where}", path, record, fld)
            size = (h, w)
        counts = seg["counts"]
        total = size[0] * size[1]
        if isinstance(counts, bytes):
            try:
                counts = counts.decode("ascii")
            except UnicodeDecodeError:
                raise InputError("unreadable mask: non-ASCII bytes in 'counts'",
                                 path, record, fld) from None
        if isinstance(counts, str):
            if counts_check is not None:
                counts_check.add(counts, total, path, record, fld)
            else:
                problem = counts_problem(counts, total)
                if problem is not None:
                    raise InputError(f"unreadable mask: {problem}", path, record, fld)
            return {"size": [size[0], size[1]], "counts": counts}
        if isinstance(counts, list):  # uncompressed, as in the official YouTube-VIS GT
            # the type set first: one C loop over the ~500 ints of a mask, not a Python one
            if not set(map(type, counts)) <= _INT and not all(_is_int(c) for c in counts):
                raise InputError("unreadable mask: uncompressed RLE 'counts' must be ints",
                                 path, record, fld)
            if counts and min(counts) < 0:
                raise InputError(f"unreadable mask: negative run {min(counts)} in 'counts'",
                                 path, record, fld)
            if sum(counts) != total:
                raise InputError(f"unreadable mask: uncompressed RLE runs sum to {sum(counts)}, "
                                 f"expected H*W = {size[0]}x{size[1]} = {total}", path, record, fld)
            rle = mask_utils.frPyObjects({"size": list(size), "counts": counts}, *size)
            return {"size": [size[0], size[1]], "counts": rle["counts"].decode("ascii")}
        raise InputError(f"unreadable mask: RLE 'counts' must be a string or a list, got "
                         f"{type(counts).__name__}", path, record, fld)
    if isinstance(seg, list):
        if size is None:
            raise InputError("polygon masks need the frame size (none is known here)",
                             path, record, fld)
        return _polygons_to_rle(seg, size[0], size[1], path, record, fld)
    raise InputError(f"unreadable mask: unknown segmentation type {type(seg).__name__}",
                     path, record, fld)


def check_segmentations(segs: Sequence[Any], size: tuple[int, int], path: str | None = None,
                        record: str | None = None, *, length: int | None = None,
                        owner: str | None = None,
                        counts_check: RleCountsCheck | None = None) -> list[dict | None]:
    """:func:`check_segmentation` of the ``T`` entries of one record (field ``segmentations[t]``).

    Args:
        segs: the record's T entries.
        size: the frame size ``(H, W)`` of every entry.
        path, record: where the record is, for error messages.
        length: the number of frames the record must have (None: not checked).
        owner: what the frames belong to, e.g. ``"video 3"``, for messages.
        counts_check: as in :func:`check_segmentation`; without one, the record's compressed
            strings are decoded together before returning (one vectorised pass per record).
    Returns:
        T compressed RLEs or None. Equal compressed RLEs of one ``counts_check`` (one file) are
        one dict, shared by the records that repeat the mask (a multi-class method writes a
        track once per category): treat them as read-only. Evaluating such records compares
        and parses each mask once.
    """
    owner = owner or "the frame"
    if length is not None and len(segs) != length:
        raise InputError(f"has {len(segs)} frames, {owner} has {length}", path, record,
                         "segmentations")
    if counts_check is None:
        with RleCountsCheck() as local:  # flushed on leaving: a bad string reported in order
            return check_segmentations(segs, size, path, record, owner=owner, counts_check=local)
    size_of = f"{owner} size {size[0]}x{size[1]}"
    height, width = size
    hw = [height, width]
    total = height * width
    masks = counts_check.masks(height, width)  # counts -> the one mask dict of this file
    get = masks.get
    out: list[dict | None] = []
    append = out.append
    new, new_t = [], []  # strings not seen before in this file, and their frames
    for t, s in enumerate(segs):
        if s is None:
            append(None)
            continue
        if type(s) is dict:  # fast path: a compressed RLE of the expected size (nearly all)
            counts, sz = s.get("counts"), s.get("size")
            # (sz == hw holds for [720.0, 1280] too: the types are checked as well)
            if (type(counts) is str and type(sz) is list and sz == hw
                    and type(sz[0]) is int is type(sz[1])):
                m = get(counts)
                if m is None:  # a new string: decode-checked, one dict for all its uses
                    m = masks[counts] = {"size": hw, "counts": counts}  # (hw: read-only too)
                    new.append(counts)
                    new_t.append(t)
                append(m)
                continue
        if new:  # queued first: an error in this entry comes after theirs, in file order
            counts_check.add_frames(new, new_t, total, path, record)
            new, new_t = [], []
        append(check_segmentation(s, size, path, record, f"segmentations[{t}]",
                                  size_of=size_of, counts_check=counts_check))
    counts_check.add_frames(new, new_t, total, path, record)
    return out
