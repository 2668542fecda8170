"""Per-frame detections in JSON lines: read and check them, one frame at a time.

One JSON object per line and frame, the frames of a video on consecutive lines, in order::

    {"video_id": 3, "frame": 0, "height": 720, "width": 1280,
     "detections": [{"segmentation": RLE, "score": 0.9,
                     "category_id": 5 | "class_probs": {"5": 0.8, "7": 0.1},
                     "embedding": [...],        # appearance embedding (memory tracker)
                     "id_probs": [...],         # identity probabilities (IAI tracker)
                     "box": [x1, y1, x2, y2]}]} # optional (memory tracker's box NMS)

:class:`DetectionReader` streams the file (memory does not grow with it) and yields a
:class:`DetectionFrame` per line holding a :class:`~tubelet.structures.instances.FrameInstances`.
Errors are :class:`~tubelet.errors.InputError` naming the file, the line and the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from tubelet.data.rle_counts import RleCountsCheck
from tubelet.data.segm import check_frame_size, check_segmentation
from tubelet.errors import InputError
from tubelet.structures.instances import FrameInstances

# detection key -> FrameInstances field, for the optional per-detection values
_OPTIONAL = {"class_probs": "class_probs", "embedding": "embeddings", "id_probs": "id_probs",
             "box": "boxes"}


@dataclass
class DetectionFrame:
    """One line of a detections file."""
    video_id: int
    index: int                  # frame index within the video (0, 1, ...)
    line: int                   # line number in the file, for messages
    instances: FrameInstances   # N detections: masks [N, H, W], scores [N], labels [N], ...


class DetectionReader:
    """Iterate the frames of a detections file (see the module docstring).

    Args:
        path: the JSON-lines file.
        categories: dataset category id of each ``class_probs`` column (C ids); None: the sorted
            keys of the first ``class_probs`` in the file. Read :attr:`categories` once a frame
            with class probabilities has been yielded.
        require: FrameInstances fields every detection must provide (e.g. ``{"embeddings"}``),
            named in the error as needed by ``required_by`` (e.g. "tracker 'memory'").
    """

    def __init__(self, path: str, categories: list[int] | None = None,
                 require: Iterable[str] = (), required_by: str = "the caller"):
        self.path = str(path)
        self.categories = None if categories is None else list(categories)
        self.require = [k for k, f in _OPTIONAL.items() if f in set(require)]
        self.required_by = required_by

    def error(self, line: int, message: str, fld: str | None = None) -> InputError:
        return InputError(message, self.path, f"line {line}", fld)

    def __iter__(self) -> Iterator[DetectionFrame]:
        p = Path(self.path)
        if not p.is_file():
            raise InputError("file not found" if not p.exists() else "expected a file", self.path)
        video, expected, done = None, 0, set()
        with open(p, encoding="utf-8", errors="replace") as fh:
            for lineno, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise self.error(lineno, f"malformed JSON: {exc.msg} (column {exc.colno})") \
                        from None
                except RecursionError:
                    raise self.error(lineno, "malformed JSON: nested too deeply") from None
                frame = self.parse_line(obj, lineno)
                if frame.video_id != video:
                    if frame.video_id in done:
                        raise self.error(lineno, f"video {frame.video_id} appears again after "
                                         "other videos; the frames of a video must be on "
                                         "consecutive lines", "video_id")
                    if video is not None:
                        done.add(video)
                    video, expected = frame.video_id, 0
                if frame.index != expected:
                    raise self.error(lineno, f"expected frame {expected} of video {video}, got "
                                     f"{frame.index}", "frame")
                expected += 1
                yield frame

    # ------------------------------------------------------------------ one line
    def parse_line(self, obj: Any, lineno: int) -> DetectionFrame:
        """Check one parsed line and build its frame."""
        if not isinstance(obj, dict):
            raise self.error(lineno, f"expected a JSON object, got {type(obj).__name__}")
        vid, t = self._int(obj, "video_id", lineno), self._int(obj, "frame", lineno)
        h = self._int(obj, "height", lineno, positive=True)
        w = self._int(obj, "width", lineno, positive=True)
        check_frame_size(h, w, self.path, f"line {lineno}", "height/width")
        dets = obj.get("detections")
        if not isinstance(dets, list):
            raise self.error(lineno, "missing key or not a list", "detections")
        with RleCountsCheck() as counts_check:  # the frame's RLE strings decoded together
            ds = [self._detection(d, j, (h, w), lineno, counts_check) for j, d in enumerate(dets)]
        opt = {}
        for key, name in _OPTIONAL.items():
            have = [key in d for d in ds]
            if any(have) and not all(have):
                raise self.error(lineno, f"detection {have.index(False)} lacks {key!r} that "
                                 "others have", f"detections[{have.index(False)}]")
            if ds and all(have):
                lens = {len(d[key]) for d in ds}
                if len(lens) > 1:
                    raise self.error(lineno, f"{key} lengths differ between detections: "
                                     f"{sorted(lens)}", "detections")
                opt[name] = np.stack([d[key] for d in ds])
        from tubelet.structures.rle import decode_many
        masks = decode_many([d["rle"] for d in ds], h, w)  # [N, H, W], this frame only
        frame = FrameInstances(masks, [d["score"] for d in ds], [d["label"] for d in ds], **opt)
        return DetectionFrame(vid, t, lineno, frame)

    def _int(self, obj: dict, key: str, lineno: int, positive: bool = False) -> int:
        if key not in obj:
            raise self.error(lineno, "missing key", key)
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, int) or (positive and v <= 0) or v < 0:
            raise self.error(lineno, f"expected a {'positive' if positive else 'non-negative'} "
                             f"integer, got {v!r}", key)
        return v

    def _num(self, v: Any, lineno: int, fld: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(lineno, f"expected a number, got {type(v).__name__}", fld)
        if not math.isfinite(v):
            raise self.error(lineno, f"not a finite number ({v})", fld)
        return float(v)

    def _vector(self, v: Any, lineno: int, fld: str) -> np.ndarray:
        if not isinstance(v, list) or not v:
            raise self.error(lineno, "expected a non-empty list of numbers", fld)
        return np.array([self._num(x, lineno, f"{fld}[{k}]") for k, x in enumerate(v)])

    def _detection(self, d: Any, j: int, size: tuple[int, int], lineno: int,
                   counts_check: RleCountsCheck) -> dict:
        pre = f"detections[{j}]"
        if not isinstance(d, dict):
            raise self.error(lineno, f"expected an object, got {type(d).__name__}", pre)
        for key in ("segmentation", "score"):
            if key not in d:
                raise self.error(lineno, "missing key", f"{pre}.{key}")
        rle = check_segmentation(d["segmentation"], size, self.path, f"line {lineno}",
                                 f"{pre}.segmentation", counts_check=counts_check)
        if rle is None:
            raise self.error(lineno, "a detection needs a mask, got null", f"{pre}.segmentation")
        out = {"rle": rle, "score": self._num(d["score"], lineno, f"{pre}.score")}
        if "class_probs" in d:
            out["class_probs"] = self._probs(d["class_probs"], lineno, f"{pre}.class_probs")
        if "category_id" in d:
            c = d["category_id"]
            if isinstance(c, bool) or not isinstance(c, int):
                raise self.error(lineno, f"expected an integer, got {c!r}", f"{pre}.category_id")
            out["label"] = c
        elif "class_probs" in out:
            out["label"] = self.categories[int(np.argmax(out["class_probs"]))]
        else:
            raise self.error(lineno, "missing key (need category_id or class_probs)",
                             f"{pre}.category_id")
        for key in self.require:
            if key not in d:
                raise self.error(lineno, f"missing key ({self.required_by} needs it)",
                                 f"{pre}.{key}")
        for key in ("embedding", "id_probs", "box"):
            if key in d:
                out[key] = self._vector(d[key], lineno, f"{pre}.{key}")
        if "box" in out and len(out["box"]) != 4:
            raise self.error(lineno, "expected [x1, y1, x2, y2]", f"{pre}.box")
        return out

    def _probs(self, v: Any, lineno: int, fld: str) -> np.ndarray:
        """``{category_id: probability}`` -> ``[C]`` in the column order of :attr:`categories`."""
        if not isinstance(v, dict) or not v:
            raise self.error(lineno, "expected a non-empty {category_id: probability} object", fld)
        probs = {}
        for k, p in v.items():
            try:
                cid = int(k)
            except ValueError:
                raise self.error(lineno, f"category id {k!r} is not an integer", fld) from None
            probs[cid] = self._num(p, lineno, f"{fld}[{k}]")
        if self.categories is None:
            self.categories = sorted(probs)
        col = {c: i for i, c in enumerate(self.categories)}
        vec = np.zeros(len(self.categories))
        for c, p in probs.items():
            if c not in col:
                raise self.error(lineno, f"category {c} is not among the class columns "
                                 f"{self.categories} (set them with --categories)", fld)
            vec[col[c]] = p
        return vec
