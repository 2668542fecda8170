"""``tubelet reduce PROPOSALS.json OUT.json``: Propose-Reduce sequence reduction of a file.

Input, one of (decided per file by the first record):

- sequence proposals: ``[{"video_id", "segmentations": [RLE | null] x T,
  "category_scores": {category_id: score, ...}}]``, one record per proposal. The agnostic score
  is the maximum category score; the output has one record per (sequence, category) that
  survives (Eq. 2 then Eq. 3 of the 2021 category-aware paper).
- a plain YouTube-VIS results file (``category_id`` + ``score`` per record): each (video,
  category) group is reduced on its own, as single-class proposals.

Videos are processed one at a time (records grouped by video; masks stay RLE, never dense).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tubelet.errors import InputError

_PROPOSALS, _PLAIN = "proposals", "results"


def register(sub) -> None:
    p = sub.add_parser("reduce", help="sequence NMS + category-aware soft-NMS of sequence "
                                      "proposals (Propose-Reduce)")
    p.add_argument("proposals", help="proposals JSON (category_scores per record) or a results "
                                     "JSON (category_id + score per record)")
    p.add_argument("out", help="output YouTube-VIS results JSON")
    p.add_argument("--agnostic-iou", type=float, default=None,
                   help="θ of the category-agnostic sequence NMS: drop a sequence whose sequence "
                        "IoU with a kept one is >= θ (default 0.9, or 0.5 with --no-aware)")
    p.add_argument("--aware-iou", type=float, default=0.5,
                   help="IoU threshold of the category-aware step with --method linear (scores "
                        "of sequences with IoU >= it are multiplied by 1 - IoU). The Gaussian "
                        "decay exp(-IoU^2/sigma) has no threshold and ignores it (default 0.5)")
    p.add_argument("--method", choices=["gaussian", "linear"], default="gaussian",
                   help="soft-NMS decay of the category-aware step (default gaussian)")
    p.add_argument("--sigma", type=float, default=0.5, help="σ of the Gaussian decay (0.5)")
    p.add_argument("--score-thr", type=float, default=None,
                   help="output records need a score > this; with the category-aware step it is "
                        "also the soft-NMS floor (default 0.001, or 0.05 with --no-aware)")
    p.add_argument("--max-per-class", type=int, default=100,
                   help="at most this many sequences per category and video (100)")
    p.add_argument("--no-aware", action="store_true",
                   help="only the category-agnostic NMS (the original Propose-Reduce)")
    p.add_argument("--gt", default=None,
                   help="ground truth: check video ids, lengths, frame sizes and categories")
    p.set_defaults(func=run)


def _check_args(args) -> None:
    for name in ("agnostic_iou", "aware_iou"):
        v = getattr(args, name)
        if v is not None and not 0.0 <= v <= 1.0:
            raise InputError(f"must be in [0, 1], got {v}", None, None, "--" + name.replace("_", "-"))
    if not args.sigma > 0:
        raise InputError(f"must be > 0, got {args.sigma}", None, None, "--sigma")
    if args.score_thr is not None and not 0.0 <= args.score_thr < 1.0:
        raise InputError(f"must be in [0, 1), got {args.score_thr}", None, None, "--score-thr")
    if args.max_per_class < 1:
        raise InputError(f"must be >= 1, got {args.max_per_class}", None, None, "--max-per-class")


def _config(args):
    from tubelet.ops import ReduceConfig
    cfg = ReduceConfig(aware=not args.no_aware, agnostic_iou=args.agnostic_iou, method=args.method,
                       sigma=args.sigma, aware_iou=args.aware_iou, max_per_class=args.max_per_class)
    if args.score_thr is not None:
        cfg.output_thr = args.score_thr
        cfg.aware_score_thr = args.score_thr
    return cfg


def _number(val: Any, path: str, rec: str, fld: str) -> float:
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise InputError(f"expected a number, got {type(val).__name__}", path, rec, fld)
    if not math.isfinite(val):
        raise InputError(f"not a finite number ({val})", path, rec, fld)
    if val < 0:
        raise InputError(f"negative score {val}", path, rec, fld)
    return float(val)


def _int(val: Any, path: str, rec: str, fld: str) -> int:
    if isinstance(val, bool) or not isinstance(val, int):
        raise InputError(f"expected an integer, got {val!r}", path, rec, fld)
    return val


def _parse_record(r: Any, i: int, path: str, mode: str | None) -> tuple[str, int, dict]:
    """Validate the cheap fields of record i; return (mode, video_id, {category: score})."""
    rec = f"records[{i}]"
    if not isinstance(r, dict):
        raise InputError(f"expected an object, got {type(r).__name__}", path, rec)
    for key in ("video_id", "segmentations"):
        if key not in r:
            raise InputError("missing key", path, rec, key)
    vid = _int(r["video_id"], path, rec, "video_id")
    if not isinstance(r["segmentations"], list):
        raise InputError("expected a list", path, rec, "segmentations")
    this = _PROPOSALS if "category_scores" in r else _PLAIN
    if mode is not None and this != mode:
        raise InputError(f"is a {this} record, but the file started with {mode} records",
                         path, rec, "category_scores" if this == _PROPOSALS else "category_id")
    if this == _PROPOSALS:
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
            scores[cid] = _number(v, path, rec, f"category_scores[{k}]")
        return this, vid, scores
    for key in ("category_id", "score"):
        if key not in r:
            raise InputError("missing key (need category_scores, or category_id and score)",
                             path, rec, key)
    return this, vid, {_int(r["category_id"], path, rec, "category_id"):
                       _number(r["score"], path, rec, "score")}


def _video_masks(records: list, idx: list[int], path: str, gt) -> list[list[dict | None]]:
    """Compressed-RLE sequences of one video's records; checks T and frame size agree."""
    from tubelet.structures.rle import to_rle
    vid = records[idx[0]]["video_id"]
    video = gt.videos.get(vid) if gt is not None else None
    if gt is not None and video is None:
        raise InputError(f"unknown video id {vid} (not in {gt.path})", path, f"records[{idx[0]}]",
                         "video_id")
    length = video.length if video else len(records[idx[0]]["segmentations"])
    size = (video.height, video.width) if video else None
    size_from = "the ground truth" if video else None
    seqs = []
    for i in idx:
        rec, segs = f"records[{i}]", records[i]["segmentations"]
        if len(segs) != length:
            raise InputError(f"has {len(segs)} frames; video {vid} has {length}"
                             + ("" if video else f" (records[{idx[0]}])"), path, rec,
                             "segmentations")
        seq = []
        for t, s in enumerate(segs):
            if isinstance(s, list) and size is None:
                raise InputError("polygon masks need the frame size: pass --gt", path, rec,
                                 f"segmentations[{t}]")
            try:
                m = to_rle(s, *(size or (0, 0)))
            except (ValueError, TypeError, KeyError) as exc:
                raise InputError(f"unreadable mask: {exc}", path, rec, f"segmentations[{t}]") from None
            if m is not None:
                hw = (m["size"][0], m["size"][1])
                if size is None:
                    size, size_from = hw, f"records[{i}].segmentations[{t}]"
                elif hw != size:
                    raise InputError(f"mask size {hw[0]}x{hw[1]} differs from {size[0]}x{size[1]} "
                                     f"of {size_from} (video {vid})", path, rec, f"segmentations[{t}]")
            seq.append(m)
        seqs.append(seq)
    return seqs


def reduce_video(seqs: list, scores: list[dict[int, float]], mode: str, cfg) -> list[tuple]:
    """Reduce one video. Returns ``(sequence index, category_id, score)`` triples."""
    from tubelet.ops import reduce_sequences, sequence_iou_rle
    out = []
    if mode == _PROPOSALS:
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


def read_json_allow_nan(path: str) -> Any:
    """Like :func:`tubelet.utils.fileio.read_json`, but NaN/Infinity parse as floats, so the
    record validation can name the record and field that holds them."""
    import json
    from pathlib import Path
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "expected a JSON file", path)
    text = p.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise InputError("file is empty", path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}", path) from None


def run(args) -> int:
    from tubelet.data.ytvis import load_ytvis, save_results
    _check_args(args)
    cfg = _config(args)
    path = str(args.proposals)
    gt = load_ytvis(args.gt) if args.gt else None
    data = read_json_allow_nan(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(f"expected a list of records, got {type(data).__name__}", path)
    mode, by_video, scores = None, {}, []
    for i, r in enumerate(data):
        mode, vid, s = _parse_record(r, i, path, mode)
        if gt is not None:
            unknown = [c for c in s if c not in gt.categories]
            if unknown:
                raise InputError(f"unknown category id {unknown[0]} (not in {gt.path})", path,
                                 f"records[{i}]", "category_scores" if mode == _PROPOSALS
                                 else "category_id")
        by_video.setdefault(vid, []).append(i)
        scores.append(s)
    out = []
    for vid, idx in by_video.items():  # one video at a time
        seqs = _video_masks(data, idx, path, gt)
        for k, cat, score in reduce_video(seqs, [scores[i] for i in idx], mode, cfg):
            out.append({"video_id": vid, "category_id": cat, "score": score,
                        "segmentations": seqs[k]})
    save_results(args.out, out)
    kind = "proposals" if mode == _PROPOSALS else "result records"
    print(f"{path}: {len(data)} {kind} in {len(by_video)} videos -> {len(out)} records: {args.out}")
    return 0
