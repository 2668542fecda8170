"""``tubelet track DETECTIONS.jsonl OUT.json --tracker NAME [key=value ...]``: associate
per-frame detections into video instances with one of the shared trackers.

Input: one JSON object per line and frame, the frames of a video on consecutive lines, in order::

    {"video_id": 3, "frame": 0, "height": 720, "width": 1280,
     "detections": [{"segmentation": RLE, "score": 0.9,
                     "category_id": 5 | "class_probs": {"5": 0.8, "7": 0.1},
                     "embedding": [...],        # tracker "memory"
                     "id_probs": [...],         # tracker "iai"
                     "box": [x1, y1, x2, y2]}]} # optional (memory tracker's box NMS)

The file is read line by line and only the current video's tracker is alive, so memory does not
grow with the file. ``key=value`` arguments override fields of the tracker's config dataclass.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from tubelet.errors import InputError

_NEEDS = {"memory": "embedding", "iai": "id_probs"}  # per-detection field a tracker requires


def register(sub) -> None:
    # no tubelet.trackers import here: building the parser must not pull in torch
    p = sub.add_parser("track", help="associate per-frame detections (JSON lines) into tracks")
    p.add_argument("detections", help="JSON-lines file, one frame per line")
    p.add_argument("out", help="output YouTube-VIS results JSON")
    # "--tracker greedy gate=0.9 ...": the overrides may follow the name (argparse would not
    # give positionals that come after an option to a nargs="*" positional)
    p.add_argument("--tracker", required=True, nargs="+", metavar=("NAME", "key=value"),
                   help="association method (greedy, memory, iai, naive), then optional config "
                        "overrides; put it after the two file arguments")
    p.add_argument("--categories", default=None,
                   help="comma-separated category ids, the columns of class_probs (default: the "
                        "sorted keys of the first class_probs in the file)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="more tracker config overrides, e.g. gate=0.95 class_weight=0")
    p.set_defaults(func=run)
    from tubelet.cli.main import allow_intermixed
    allow_intermixed(p)


class _Where:
    """Names a line and a field in errors."""

    def __init__(self, path: str, lineno: int):
        self.path, self.rec = path, f"line {lineno}"

    def err(self, msg: str, fld: str | None = None) -> InputError:
        return InputError(msg, self.path, self.rec, fld)


def _int(obj: dict, key: str, w: _Where, positive: bool = False) -> int:
    if key not in obj:
        raise w.err("missing key", key)
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int) or (positive and v <= 0) or v < 0:
        raise w.err(f"expected a {'positive' if positive else 'non-negative'} integer, got {v!r}",
                    key)
    return v


def _num(v: Any, w: _Where, fld: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise w.err(f"expected a number, got {type(v).__name__}", fld)
    if not math.isfinite(v):
        raise w.err(f"not a finite number ({v})", fld)
    return float(v)


def _vector(v: Any, w: _Where, fld: str) -> np.ndarray:
    if not isinstance(v, list) or not v:
        raise w.err("expected a non-empty list of numbers", fld)
    return np.array([_num(x, w, f"{fld}[{k}]") for k, x in enumerate(v)])


class _Frames:
    """Turns parsed lines into FrameInstances; keeps the class-column order."""

    def __init__(self, tracker: str, categories: list[int] | None):
        self.tracker = tracker
        self.categories = categories

    def detection_fields(self, d: Any, j: int, h: int, w_: int, w: _Where) -> dict:
        from tubelet.structures.rle import to_rle
        pre = f"detections[{j}]"
        if not isinstance(d, dict):
            raise w.err(f"expected an object, got {type(d).__name__}", pre)
        for key in ("segmentation", "score"):
            if key not in d:
                raise w.err("missing key", f"{pre}.{key}")
        try:
            rle = to_rle(d["segmentation"], h, w_)
        except (ValueError, TypeError, KeyError) as exc:
            raise w.err(f"unreadable mask: {exc}", f"{pre}.segmentation") from None
        if rle is None:
            raise w.err("a detection needs a mask, got null", f"{pre}.segmentation")
        if list(rle["size"]) != [h, w_]:
            raise w.err(f"mask size {rle['size'][0]}x{rle['size'][1]} differs from the frame "
                        f"size {h}x{w_}", f"{pre}.segmentation")
        out = {"rle": rle, "score": _num(d["score"], w, f"{pre}.score")}
        if "class_probs" in d:
            out["probs"] = self._probs(d["class_probs"], w, f"{pre}.class_probs")
        if "category_id" in d:
            c = d["category_id"]
            if isinstance(c, bool) or not isinstance(c, int):
                raise w.err(f"expected an integer, got {c!r}", f"{pre}.category_id")
            out["label"] = c
        elif "probs" in out:
            out["label"] = self.categories[int(np.argmax(out["probs"]))]
        else:
            raise w.err("missing key (need category_id or class_probs)", f"{pre}.category_id")
        need = _NEEDS.get(self.tracker)
        if need and need not in d:
            raise w.err(f"missing key (tracker '{self.tracker}' needs it)", f"{pre}.{need}")
        for key in ("embedding", "id_probs"):
            if key in d:
                out[key] = _vector(d[key], w, f"{pre}.{key}")
        if "box" in d:
            out["box"] = _vector(d["box"], w, f"{pre}.box")
            if len(out["box"]) != 4:
                raise w.err("expected [x1, y1, x2, y2]", f"{pre}.box")
        return out

    def _probs(self, v: Any, w: _Where, fld: str) -> np.ndarray:
        if not isinstance(v, dict) or not v:
            raise w.err("expected a non-empty {category_id: probability} object", fld)
        probs = {}
        for k, p in v.items():
            try:
                cid = int(k)
            except ValueError:
                raise w.err(f"category id {k!r} is not an integer", fld) from None
            probs[cid] = _num(p, w, f"{fld}[{k}]")
        if self.categories is None:
            self.categories = sorted(probs)
        col = {c: i for i, c in enumerate(self.categories)}
        vec = np.zeros(len(self.categories))
        for c, p in probs.items():
            if c not in col:
                raise w.err(f"category {c} is not among the class columns {self.categories} "
                            "(set them with --categories)", fld)
            vec[col[c]] = p
        return vec

    def build(self, line: dict, w: _Where):
        """(video_id, frame index, FrameInstances) of one parsed line."""
        from tubelet.structures.instances import FrameInstances
        from tubelet.structures.rle import decode_many
        if not isinstance(line, dict):
            raise w.err(f"expected a JSON object, got {type(line).__name__}")
        vid, t = _int(line, "video_id", w), _int(line, "frame", w)
        h, wd = _int(line, "height", w, True), _int(line, "width", w, True)
        dets = line.get("detections")
        if not isinstance(dets, list):
            raise w.err("missing key or not a list", "detections")
        ds = [self.detection_fields(d, j, h, wd, w) for j, d in enumerate(dets)]
        opt = {}
        for key, name in (("probs", "class_probs"), ("embedding", "embeddings"),
                          ("id_probs", "id_probs"), ("box", "boxes")):
            have = [key in d for d in ds]
            if any(have) and not all(have):
                raise w.err(f"detection {have.index(False)} lacks {key!r} that others have",
                            f"detections[{have.index(False)}]")
            if ds and all(have):
                lens = {len(d[key]) for d in ds}
                if len(lens) > 1:
                    raise w.err(f"{key} lengths differ between detections: {sorted(lens)}",
                                "detections")
                opt[name] = np.stack([d[key] for d in ds])
        masks = decode_many([d["rle"] for d in ds], h, wd)  # [N, H, W], this frame only
        frame = FrameInstances(masks, [d["score"] for d in ds], [d["label"] for d in ds], **opt)
        return vid, t, frame


def run(args) -> int:
    from pathlib import Path

    from tubelet.data.ytvis import save_results
    from tubelet.trackers import build_tracker, list_trackers, tracker_config_class
    from tubelet.utils.config import apply_overrides

    path = str(args.detections)
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "expected a file", path)
    name, overrides = args.tracker[0], args.tracker[1:] + list(args.overrides)
    if name not in list_trackers():
        raise InputError(f"unknown tracker {name!r}; known: {list_trackers()}", None, None,
                         "--tracker")
    cfg = apply_overrides(tracker_config_class(name)(), overrides, where=f"tracker '{name}' config")
    categories = None
    if args.categories:
        try:
            categories = [int(c) for c in args.categories.split(",") if c.strip()]
        except ValueError:
            raise InputError(f"expected comma-separated integers, got {args.categories!r}",
                             None, None, "--categories") from None
    frames = _Frames(name, categories)
    tracker, video, expected, done = None, None, 0, set()
    records: list[dict] = []
    n_frames = 0

    def finish():
        records.extend(tracker.finalize().to_results(video))

    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, text in enumerate(fh, 1):
            if not text.strip():
                continue
            w = _Where(path, lineno)
            try:
                line = json.loads(text)
            except json.JSONDecodeError as exc:
                raise w.err(f"malformed JSON: {exc.msg} (column {exc.colno})") from None
            vid, t, frame = frames.build(line, w)
            if vid != video:
                if vid in done:
                    raise w.err(f"video {vid} appears again after other videos; the frames of "
                                "a video must be on consecutive lines", "video_id")
                if tracker is not None:
                    finish()
                    done.add(video)
                # one tracker per video; category columns are known once class_probs were seen
                tracker = build_tracker(name, cfg, category_ids=frames.categories)
                video, expected = vid, 0
            if t != expected:
                raise w.err(f"expected frame {expected} of video {vid}, got {t}", "frame")
            if tracker.category_ids is None and frames.categories is not None:
                tracker.category_ids = list(frames.categories)
            try:
                tracker.update(frame)
            except ValueError as exc:
                raise w.err(str(exc)) from None
            expected += 1
            n_frames += 1
    if tracker is None:
        raise InputError("no frames in the file", path)
    finish()
    save_results(args.out, records)
    print(f"{path}: {n_frames} frames in {len(done) + 1} videos -> {len(records)} records "
          f"({name} tracker): {args.out}")
    return 0
