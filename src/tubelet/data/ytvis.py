"""YouTube-VIS 2019/2021/2022 and OVIS ground truth and results: load, validate, save.

Ground truth (see ``shared/EVAL_NOTES.md``)::

    {"videos": [{id, width, height, length, file_names}], "categories": [{id, name}],
     "annotations": [{id, video_id, category_id, segmentations: [RLE | polygon | null] x length,
                      areas: [float | null] x length, bboxes, iscrowd, occlusion?}]}

Results: ``[{video_id, category_id, score, segmentations: [RLE | null] x length}]``.

Every mask is checked and converted on load to a compressed RLE (``counts`` a str) by
:mod:`tubelet.data.segm`. Validation errors raise :class:`~tubelet.errors.InputError` naming the
file, the record and the field.
"""
from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Iterable

from tubelet.data.rle_counts import RleCountsCheck
from tubelet.data.segm import check_frame_size, check_segmentations
from tubelet.errors import InputError
from tubelet.structures.rle import area as rle_area
from tubelet.utils.fileio import FAST_JSON_MIN_BYTES, gc_paused, read_json, write_json


@dataclass
class Video:
    id: int
    width: int
    height: int
    length: int
    file_names: list[str] = field(default_factory=list)
    name: str = ""  # folder name under JPEGImages/, derived from file_names


@dataclass
class Annotation:
    """One ground-truth instance track. ``segmentations[t]`` is a compressed RLE or None."""
    id: int
    video_id: int
    category_id: int
    segmentations: list[dict | None]
    areas: list[float | None]
    iscrowd: int = 0
    occlusion: list[Any] | None = None  # OVIS per-frame occlusion labels, if present
    bboxes: list[list[float] | None] | None = None


@dataclass
class YTVISDataset:
    videos: dict[int, Video]
    categories: dict[int, str]
    annotations: list[Annotation]
    path: str = ""
    info: dict = field(default_factory=dict)
    # Foreground area of each compressed-RLE string of the annotations, computed while loading
    # (the decode check gives it): the evaluator reads areas here instead of parsing again.
    mask_areas: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def annotations_of(self, video_id: int) -> list[Annotation]:
        if not hasattr(self, "_by_video"):
            by: dict[int, list[Annotation]] = {}
            for a in self.annotations:
                by.setdefault(a.video_id, []).append(a)
            self._by_video = by
        return self._by_video.get(video_id, [])

    def subset(self, video_ids: Iterable[int]) -> YTVISDataset:
        """The dataset restricted to ``video_ids``: those videos (in this dataset's order) and
        their annotations; all categories are kept, so per-category results stay comparable.
        The Video and Annotation objects are shared, not copied. An id that is not a video of
        this dataset is an InputError."""
        keep = set()
        for v in video_ids:
            if isinstance(v, bool) or v not in self.videos:
                raise InputError(f"unknown video id {v!r}", self.path or None, None, "video_ids")
            keep.add(v)
        return YTVISDataset({i: v for i, v in self.videos.items() if i in keep},
                            dict(self.categories),
                            [a for a in self.annotations if a.video_id in keep],
                            self.path, self.info, self.mask_areas)

    def to_json(self) -> dict:
        """The dataset as a YouTube-VIS JSON object (compressed RLE)."""
        return {
            "info": self.info,
            "videos": [{"id": v.id, "width": v.width, "height": v.height, "length": v.length,
                        "file_names": v.file_names} for v in self.videos.values()],
            "categories": [{"id": c, "name": n} for c, n in self.categories.items()],
            "annotations": [annotation_to_json(a) for a in self.annotations],
        }


def annotation_to_json(a: Annotation) -> dict:
    d = {"id": a.id, "video_id": a.video_id, "category_id": a.category_id,
         "segmentations": a.segmentations, "areas": a.areas, "iscrowd": a.iscrowd,
         "bboxes": a.bboxes if a.bboxes is not None else [bbox_of(s) for s in a.segmentations]}
    if a.occlusion is not None:
        d["occlusion"] = a.occlusion
    return d


def bbox_of(rle: dict | None) -> list[float] | None:
    from pycocotools import mask as mask_utils
    if rle is None:
        return None
    if rle_area(rle) == 0:
        return None
    return [float(x) for x in mask_utils.toBbox(rle)]


# ----------------------------------------------------------------------------------- helpers
def _req(obj: Any, key: str, path: str, record: str, types: type | tuple) -> Any:
    if not isinstance(obj, dict):
        raise InputError(f"expected an object, got {type(obj).__name__}", path, record)
    if key not in obj:
        raise InputError("missing key", path, record, key)
    val = obj[key]
    if isinstance(val, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise InputError(f"expected {_tname(types)}, got a boolean", path, record, key)
    if not isinstance(val, types):
        raise InputError(f"expected {_tname(types)}, got {type(val).__name__}", path, record, key)
    return val


def _tname(types) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def _check_number(val: Any, path: str, record: str, fld: str, allow_negative: bool = False) -> float:
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise InputError(f"expected a number, got {type(val).__name__}", path, record, fld)
    if not math.isfinite(val):
        raise InputError(f"not a finite number ({val})", path, record, fld)
    if not allow_negative and val < 0:
        raise InputError(f"negative value {val}", path, record, fld)
    return float(val)


def _video_segs(segs: list, video: Video, path: str, record: str,
                counts_check: RleCountsCheck) -> list[dict | None]:
    return check_segmentations(segs, (video.height, video.width), path, record,
                               length=video.length, owner=f"video {video.id}",
                               counts_check=counts_check)


# ----------------------------------------------------------------------------------- GT
def check_relative_name(name: Any, path: str, record: str, fld: str) -> str:
    """A frame file name must be a relative path that stays under the image root: no ``..``
    component, no absolute path or drive (issue 13: ``../../x/frames/00000.jpg`` read frames
    outside the root, and output names derived from it escaped ``--out``)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"expected a non-empty relative path, got {name!r}", path, record, fld)
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts \
            or "\0" in name:
        raise InputError(f"{name!r} leaves the image root (absolute path or '..' component)",
                         path, record, fld)
    return name


def load_ytvis(source: str | os.PathLike | dict, path: str | None = None) -> YTVISDataset:
    """Load and validate YouTube-VIS / OVIS ground truth from a file or a parsed dict."""
    if isinstance(source, dict):
        data, path = source, path or "<memory>"
    else:
        path = str(source)
        data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object with videos/categories/annotations, "
                         f"got {type(data).__name__}", path)
    for key in ("videos", "categories"):
        if key not in data:
            raise InputError("missing key", path, None, key)
        if not isinstance(data[key], list):
            raise InputError("expected a list", path, None, key)

    videos: dict[int, Video] = {}
    for i, v in enumerate(data["videos"]):
        rec = f"videos[{i}]"
        vid = _req(v, "id", path, rec, int)
        if vid in videos:
            raise InputError(f"duplicate video id {vid}", path, rec, "id")
        w = _req(v, "width", path, rec, int)
        h = _req(v, "height", path, rec, int)
        check_frame_size(h, w, path, rec, "height/width")
        files = v.get("file_names") or []
        if not isinstance(files, list):
            raise InputError("expected a list", path, rec, "file_names")
        length = v.get("length", len(files))
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise InputError(f"expected a positive int, got {length!r}", path, rec, "length")
        if files and len(files) != length:
            raise InputError(f"{len(files)} file names for length {length}", path, rec, "file_names")
        for t, f in enumerate(files):
            check_relative_name(f, path, rec, f"file_names[{t}]")
        name = os.path.dirname(files[0]) if files else str(vid)
        videos[vid] = Video(vid, w, h, length, list(files), name)

    categories: dict[int, str] = {}
    for i, c in enumerate(data["categories"]):
        rec = f"categories[{i}]"
        cid = _req(c, "id", path, rec, int)
        if cid in categories:
            raise InputError(f"duplicate category id {cid}", path, rec, "id")
        categories[cid] = str(c.get("name", cid))

    anns_raw = data.get("annotations", [])
    if not isinstance(anns_raw, list):
        raise InputError("expected a list", path, None, "annotations")
    annotations: list[Annotation] = []
    seen_ids: set[int] = set()
    with gc_paused(), RleCountsCheck() as counts_check:  # RLE strings decoded in batches
        for i, a in enumerate(anns_raw):
            annotations.append(_annotation(a, i, videos, categories, seen_ids, path,
                                           counts_check))
    return YTVISDataset(videos, categories, annotations, path, data.get("info", {}) or {},
                        counts_check.areas)


def _annotation(a: Any, i: int, videos: dict[int, Video], categories: dict[int, str],
                seen_ids: set[int], path: str, counts_check: RleCountsCheck) -> Annotation:
    """Validate annotation ``i`` of a ground-truth file."""
    rec = f"annotations[{i}]"
    aid = _req(a, "id", path, rec, int)
    if aid in seen_ids:
        raise InputError(f"duplicate annotation id {aid}", path, rec, "id")
    seen_ids.add(aid)
    vid = _req(a, "video_id", path, rec, int)
    if vid not in videos:
        raise InputError(f"unknown video id {vid}", path, rec, "video_id")
    cid = _req(a, "category_id", path, rec, int)
    if cid not in categories:
        raise InputError(f"unknown category id {cid}", path, rec, "category_id")
    video = videos[vid]
    segs = _video_segs(_req(a, "segmentations", path, rec, list), video, path, rec,
                       counts_check)
    areas_raw = a.get("areas")
    if areas_raw is None:
        areas = [None if s is None else float(rle_area(s)) for s in segs]
    else:
        if not isinstance(areas_raw, list) or len(areas_raw) != video.length:
            raise InputError(f"expected a list of {video.length} areas", path, rec, "areas")
        areas = [None if x is None else _check_number(x, path, rec, f"areas[{t}]")
                 for t, x in enumerate(areas_raw)]
    iscrowd = a.get("iscrowd", 0)
    if iscrowd not in (0, 1):
        raise InputError(f"expected 0 or 1, got {iscrowd!r}", path, rec, "iscrowd")
    occ = a.get("occlusion")
    if occ is not None and (not isinstance(occ, list) or len(occ) != video.length):
        raise InputError(f"expected a list of {video.length} labels", path, rec, "occlusion")
    bboxes = a.get("bboxes")
    return Annotation(aid, vid, cid, segs, areas, int(iscrowd), occ,
                      bboxes if isinstance(bboxes, list) else None)


# ----------------------------------------------------------------------------------- results
class ResultRecords(list):
    """The records returned by :func:`validate_results`: a plain list of record dicts, plus
    ``mask_areas``, the foreground area of each of their compressed-RLE strings (computed by the
    decode check; the evaluator reads areas here instead of parsing the strings again). Areas
    are looked up by string, so a record changed afterwards is still scored right: a string
    not in ``mask_areas`` is measured by pycocotools."""

    def __init__(self, records: Iterable[dict] = (), mask_areas: dict[str, int] | None = None):
        super().__init__(records)
        self.mask_areas: dict[str, int] = {} if mask_areas is None else mask_areas


def validate_results(records: Any, gt: YTVISDataset, path: str = "<results>",
                     ignore_unknown_categories: bool = True) -> ResultRecords:
    """Validate result records against ``gt``; return new records with compressed-RLE masks.

    Records whose category is absent from the GT are dropped (the official evaluator ignores
    them) unless ``ignore_unknown_categories`` is False, in which case they are an error.
    Records repeating a mask share one mask dict (treat masks as read-only), see
    :func:`~tubelet.data.segm.check_segmentations`.
    """
    if isinstance(records, dict) and "annotations" in records:
        records = records["annotations"]
    if not isinstance(records, list):
        raise InputError(f"expected a list of result records, got {type(records).__name__}", path)
    out = []
    with gc_paused(), RleCountsCheck() as counts_check:  # RLE strings decoded in batches
        for i, r in enumerate(records):
            rec = f"results[{i}]"
            vid = _req(r, "video_id", path, rec, int)
            if vid not in gt.videos:
                raise InputError(f"unknown video id {vid} (not in "
                                 f"{gt.path or 'the ground truth'})", path, rec, "video_id")
            cid = _req(r, "category_id", path, rec, int)
            score = _check_number(_req(r, "score", path, rec, (int, float)), path, rec, "score")
            segs = _video_segs(_req(r, "segmentations", path, rec, list), gt.videos[vid], path,
                               rec, counts_check)
            if cid not in gt.categories:
                if ignore_unknown_categories:
                    continue
                raise InputError(f"unknown category id {cid}", path, rec, "category_id")
            out.append({"video_id": vid, "category_id": cid, "score": score,
                        "segmentations": segs})
    return ResultRecords(out, counts_check.areas)


def load_results(source: str | os.PathLike | list, gt: YTVISDataset, **kw) -> ResultRecords:
    """Load a results JSON file (or a list of records) and validate it against ``gt``."""
    if isinstance(source, list):
        return validate_results(source, gt, "<memory>", **kw)
    data = _large_file_bytes(source)
    if data is not None:  # the typed fast path; None for anything it does not take
        from tubelet.data.results_fast import fast_results
        fast = fast_results(data, gt, str(source), **kw)
        if fast is not None:
            return ResultRecords(*fast)
        del data
    return validate_results(read_json(source), gt, str(source), **kw)


def _large_file_bytes(path: str | os.PathLike) -> bytes | None:
    """The bytes of a regular file of at least ``FAST_JSON_MIN_BYTES``; None otherwise (then
    :func:`read_json` reads it, or reports why it cannot)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size < FAST_JSON_MIN_BYTES:
            return None
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def save_results(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write results JSON atomically (compressed RLE; masks converted if needed)."""
    out = []
    for r in records:
        segs = []
        for s in r["segmentations"]:
            if s is not None and isinstance(s.get("counts"), bytes):
                s = {"size": s["size"], "counts": s["counts"].decode("ascii")}
            segs.append(s)
        out.append({"video_id": int(r["video_id"]), "category_id": int(r["category_id"]),
                    "score": float(r["score"]), "segmentations": segs})
    write_json(path, out)


def save_ytvis(path: str | os.PathLike, ds: YTVISDataset | dict) -> None:
    write_json(path, ds.to_json() if isinstance(ds, YTVISDataset) else ds)
