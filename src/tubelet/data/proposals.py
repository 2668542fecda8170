"""Sequence proposals of Propose-Reduce: read, check and reduce them, one video at a time.

A proposals file is a list of records, one of two kinds (decided by the first record):

- sequence proposals ``{"video_id", "segmentations": [RLE | null] x T,
  "category_scores": {category_id: score, ...}}``: the agnostic score of a proposal is its best
  category score; the output has one record per (sequence, category) that survives (Eq. 2, then
  Eq. 3 of the 2021 category-aware paper);
- plain YouTube-VIS results (``category_id`` + ``score`` per record): each (video, category)
  group is reduced on its own, as single-class proposals.

Masks stay compressed RLE (never dense) and are checked by :mod:`tubelet.data.segm`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tubelet.data.rle_counts import RleCountsCheck
from tubelet.data.segm import check_segmentation
from tubelet.data.ytvis import YTVISDataset, _check_number
from tubelet.errors import InputError

PROPOSALS, PLAIN = "proposals", "results"  # the two kinds of record


@dataclass
class Reduced:
    """What :func:`reduce_records` made of a file."""
    records: list[dict]  # YouTube-VIS result records {video_id, category_id, score, segmentations}
    kind: str            # PROPOSALS or PLAIN
    num_inputs: int      # input records
    num_videos: int


def _int(val: Any, path: str, rec: str, fld: str) -> int:
    if isinstance(val, bool) or not isinstance(val, int):
        raise InputError(f"expected an integer, got {val!r}", path, rec, fld)
    return val


def parse_record(r: Any, i: int, path: str, kind: str | None) -> tuple[str, int, dict[int, float]]:
    """Check the cheap fields of record ``i``; masks are checked per video later.

    Args:
        r: the record as parsed from JSON.
        i: its index in the file (for messages, ``records[i]``).
        path: the file.
        kind: the kind of the file's earlier records (None for the first record).
    Returns:
        ``(kind, video_id, {category_id: score})``; a plain record has one category.
    """
    rec = f"records[{i}]"
    if not isinstance(r, dict):
        raise InputError(f"expected an object, got {type(r).__name__}", path, rec)
    for key in ("video_id", "segmentations"):
        if key not in r:
            raise InputError("missing key", path, rec, key)
    vid = _int(r["video_id"], path, rec, "video_id")
    if not isinstance(r["segmentations"], list):
        raise InputError("expected a list", path, rec, "segmentations")
    this = PROPOSALS if "category_scores" in r else PLAIN
    if kind is not None and this != kind:
        raise InputError(f"is a {this} record, but the file started with {kind} records",
                         path, rec, "category_scores" if this == PROPOSALS else "category_id")
    if this == PROPOSALS:
        cs = r["category_scores"]
        if not isinstance(cs, dict) or not cs:
            raise InputError("expected a non-empty {category_id: score} object", path, rec,
                             "category_scores")
        scores = {}
        for k, v in cs.items():
            try:
                cid = int(k)
            except (TypeError, ValueError):
                raise InputError(f"category id {k!r} is not an integer", path, rec,
                                 "category_scores") from None
            scores[cid] = _check_number(v, path, rec, f"category_scores[{k}]")
        return this, vid, scores
    for key in ("category_id", "score"):
        if key not in r:
            raise InputError("missing key (need category_scores, or category_id and score)",
                             path, rec, key)
    return this, vid, {_int(r["category_id"], path, rec, "category_id"):
                       _check_number(r["score"], path, rec, "score")}


def video_masks(records: list, idx: list[int], path: str,
                gt: YTVISDataset | None = None) -> list[list[dict | None]]:
    """The compressed-RLE sequences ``[len(idx)][T]`` of one video's records ``records[i]``.

    Every record must have the video's T frames (from ``gt``, else from the first record) and
    every mask its frame size (from ``gt``, else from the first mask met).
    """
    vid = records[idx[0]]["video_id"]
    video = gt.videos.get(vid) if gt is not None else None
    if gt is not None and video is None:
        raise InputError(f"unknown video id {vid} (not in {gt.path})", path, f"records[{idx[0]}]",
                         "video_id")
    length = video.length if video else len(records[idx[0]]["segmentations"])
    size = (video.height, video.width) if video else None
    size_from = "the ground truth" if video else None
    seqs = []
    with RleCountsCheck() as counts_check:  # the video's RLE strings decoded together
        for i in idx:
            rec, segs = f"records[{i}]", records[i]["segmentations"]
            if len(segs) != length:
                raise InputError(f"has {len(segs)} frames; video {vid} has {length}"
                                 + ("" if video else f" (records[{idx[0]}])"), path, rec,
                                 "segmentations")
            seq = []
            for t, s in enumerate(segs):
                fld = f"segmentations[{t}]"
                if size is None and isinstance(s, list):
                    raise InputError("polygon masks need the frame size: give the ground truth "
                                     "(--gt)", path, rec, fld)
                where = size and f"{size[0]}x{size[1]} of {size_from} (video {vid})"
                m = check_segmentation(s, size, path, rec, fld, size_of=where,
                                       counts_check=counts_check)
                if m is not None and size is None:  # without GT the first mask sets the size
                    size, size_from = (m["size"][0], m["size"][1]), f"{rec}.{fld}"
                seq.append(m)
            seqs.append(seq)
    return seqs


def reduce_video(seqs: list, scores: list[dict[int, float]], kind: str, cfg) -> list[tuple]:
    """Reduce the N sequences of one video.

    Args:
        seqs: ``[N][T]`` compressed RLEs (or None).
        scores: ``[N]`` ``{category_id: score}``, one entry per plain record.
        kind: PROPOSALS (category-aware) or PLAIN (each category on its own).
        cfg: a :class:`tubelet.ops.ReduceConfig`.
    Returns:
        ``(sequence index, category_id, score)`` triples of what survives.
    """
    from tubelet.ops import reduce_sequences, sequence_iou_rle
    out = []
    if kind == PROPOSALS:
        cats = sorted({c for s in scores for c in s})
        mat = np.array([[s.get(c, 0.0) for c in cats] for s in scores])  # [N, C]
        for r in reduce_sequences(mat, sequence_iou_rle(seqs), cfg=cfg):
            out.append((r.index, cats[r.klass], r.score))
        return out
    by_cat: dict[int, list[int]] = {}
    for i, s in enumerate(scores):
        by_cat.setdefault(next(iter(s)), []).append(i)
    for cat, idx in sorted(by_cat.items()):
        mat = np.array([[scores[i][cat]] for i in idx])  # [n, 1]
        for r in reduce_sequences(mat, sequence_iou_rle([seqs[i] for i in idx]), cfg=cfg):
            out.append((idx[r.index], cat, r.score))
    return out


def reduce_records(data: Any, path: str, cfg, gt: YTVISDataset | None = None) -> Reduced:
    """Check and reduce a parsed proposals (or plain results) file, one video at a time.

    Args:
        data: the parsed JSON: a list of records (or an object with an ``annotations`` list).
        path: the file, for messages.
        cfg: a :class:`tubelet.ops.ReduceConfig`.
        gt: optional ground truth: video ids, lengths, frame sizes and categories are checked.
    """
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(f"expected a list of records, got {type(data).__name__}", path)
    kind, by_video, scores = None, {}, []
    for i, r in enumerate(data):
        kind, vid, s = parse_record(r, i, path, kind)
        if gt is not None:
            unknown = [c for c in s if c not in gt.categories]
            if unknown:
                raise InputError(f"unknown category id {unknown[0]} (not in {gt.path})", path,
                                 f"records[{i}]", "category_scores" if kind == PROPOSALS
                                 else "category_id")
        by_video.setdefault(vid, []).append(i)
        scores.append(s)
    out = []
    for vid, idx in by_video.items():  # one video at a time
        seqs = video_masks(data, idx, path, gt)
        for k, cat, score in reduce_video(seqs, [scores[i] for i in idx], kind, cfg):
            out.append({"video_id": vid, "category_id": cat, "score": score,
                        "segmentations": seqs[k]})
    return Reduced(out, kind or PLAIN, len(data), len(by_video))
