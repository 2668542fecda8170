"""A fast path for loading a large, well-formed results file: typed parsing + a lean check.

:func:`tubelet.data.ytvis.validate_results` checks every mask of a generic JSON tree (a dict per
mask, its keys and value types looked up in Python): on the 125 MB results file of
``bench/eval_cli_speed.py`` that check and the parse are most of ``tubelet eval``'s time. Here
msgspec parses the bytes straight into typed records (``video_id`` / ``category_id`` ints,
``score`` a number, ``segmentations`` a list of ``null`` or ``{"size": [int, int], "counts":
str}``: the types are checked in C while parsing), and one Python pass checks what typing cannot
(known video, finite non-negative score, one entry per frame, the video's frame size) and
decode-checks every distinct RLE string exactly as the generic path does.

It either returns exactly what ``validate_results(read_json(path), gt, path)`` returns (the same
records, the same shared mask dicts, the same areas; as a ``(records, areas)`` pair, which
``load_results`` wraps) or returns None and changes nothing, for
anything else at all -- another layout, polygons, uncompressed RLE, a float frame size, a bad
value, a bad RLE string: the generic path then re-reads the file and reports the first problem
in file order, with its usual message. A valid file that takes the fallback is only slower.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from tubelet.data.rle_counts import RleCountsCheck
from tubelet.errors import InputError
from tubelet.utils.fileio import gc_paused

_decoder: Any = ...  # msgspec decoder of a list of _Record, built on first use (None: no msgspec)


def _results_decoder() -> Any:
    global _decoder
    if _decoder is ...:
        try:
            import msgspec
        except ImportError:  # pragma: no cover - msgspec is a dependency
            _decoder = None
            return None

        # defstruct: real types, not the strings ``from __future__ import annotations`` makes
        rle = msgspec.defstruct("Rle", [("size", tuple[int, int]), ("counts", str)], gc=False)
        record = msgspec.defstruct(  # unknown keys are ignored, as the generic path does
            "Record", [("video_id", int), ("category_id", int), ("score", float),
                       ("segmentations", list[Optional[rle]])], gc=False)
        _decoder = msgspec.json.Decoder(list[record])
    return _decoder


def fast_results(data: bytes, gt, path: str, ignore_unknown_categories: bool = True):
    """``validate_results`` of the JSON ``data`` for the common, valid case; None otherwise.

    Args:
        data: the results file's bytes.
        gt: the :class:`~tubelet.data.ytvis.YTVISDataset` the records refer to.
        path: the file, for the record names the RLE check keeps (never raised from here).
        ignore_unknown_categories: as in ``validate_results``.
    Returns:
        ``(records, areas)``: the record dicts and the foreground area of each RLE string (the
        parts of a :class:`~tubelet.data.ytvis.ResultRecords`), or None (take the generic path).
    """
    decode = _results_decoder()
    if decode is None:
        return None
    with gc_paused():
        try:
            records = decode.decode(data)
        except (ValueError, RecursionError):  # msgspec's DecodeError / ValidationError
            return None
        try:
            return _check(records, gt, path, ignore_unknown_categories)
        except (_Fallback, InputError):
            return None


class _Fallback(Exception):
    pass


def _check(records: list, gt, path: str, ignore_unknown: bool) -> tuple[list[dict], dict]:
    videos, categories = gt.videos, gt.categories
    isfinite = math.isfinite
    out: list[dict] = []
    append = out.append
    counts_check = RleCountsCheck()
    per_video: dict[int, tuple] = {}  # video id -> (size tuple, length, masks, H*W)
    for i, r in enumerate(records):
        vid, score, segs = r.video_id, r.score, r.segmentations
        info = per_video.get(vid)
        if info is None:
            video = videos.get(vid)
            if video is None:
                raise _Fallback
            h, w = video.height, video.width
            info = per_video[vid] = ((h, w), video.length, counts_check.masks(h, w), h * w)
        hw, length, masks, total = info
        if not isfinite(score) or score < 0 or len(segs) != length:
            raise _Fallback
        get = masks.get
        # comprehensions (C loops): a known string's shared dict, None for null or a new string
        row: list[dict | None] = [seg and get(seg.counts) for seg in segs]
        sizes = {seg.size for seg in segs if seg is not None}
        if sizes and (len(sizes) > 1 or hw not in sizes):
            raise _Fallback
        new, new_t = [], []
        if None in row:  # null entries, or strings not seen before in this file
            for t in [t for t, m in enumerate(row) if m is None and segs[t] is not None]:
                counts = segs[t].counts
                m = get(counts)
                if m is None:  # a new string: decode-checked, one dict for all its uses
                    m = masks[counts] = {"size": [hw[0], hw[1]], "counts": counts}
                    new.append(counts)
                    new_t.append(t)
                row[t] = m
        if new:
            counts_check.add_frames(new, new_t, total, path, f"results[{i}]")
        cid = r.category_id
        if cid not in categories:
            if ignore_unknown:
                continue
            raise _Fallback
        append({"video_id": vid, "category_id": cid, "score": float(score),
                "segmentations": row})
    counts_check.flush()  # a bad string raises InputError: the caller falls back
    return out, counts_check.areas
