"""``tubelet show``: draw the tracks of one video over its frames.

    tubelet show SOURCE RESULTS.json --video-id ID --out overlay.mp4 [--png-dir DIR]
                 [--gt GT.json] [--score-thr 0.1]

SOURCE is a video file or a folder of frames. RESULTS is a YouTube-VIS results file (a list of
``{video_id, category_id, score, segmentations}`` records) or a ground-truth file (then its
annotations are drawn, without scores). Each result record is one track; the records of the
video kept by ``--score-thr`` are sorted by decreasing score and numbered from 1 (track id =
rank + 1, since 0 is the background of the id PNGs). Category names come from ``--gt``, else from
a ground-truth RESULTS file, else ``cat<id>``.
"""
from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from tubelet.data.segm import check_segmentations
from tubelet.data.ytvis import (YTVISDataset, Video, _check_number, _req, load_ytvis,
                                validate_results)
from tubelet.errors import InputError
from tubelet.structures.instances import VideoInstances
from tubelet.utils.fileio import read_json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the video stack (PyAV, scipy) is imported only when the command runs
    from tubelet.video.reader import VideoSource


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "show", help="draw tracks (results or ground truth) over a video",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="video file or folder of jpg/png frames")
    p.add_argument("results", help="YouTube-VIS results JSON (or a ground-truth JSON)")
    p.add_argument("--video-id", type=int, required=True, help="video id of the records to draw")
    p.add_argument("--out", help="overlay video to write (H.264 mp4)")
    p.add_argument("--png-dir", help="folder for one id PNG per frame (pixel = track id)")
    p.add_argument("--gt", help="ground-truth JSON: category names and video size check")
    p.add_argument("--score-thr", type=float, default=0.1,
                   help="drop result records scoring below this (default 0.1; results only)")
    p.add_argument("--alpha", type=float, default=0.5, help="mask fill opacity (default 0.5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _is_gt(data: Any) -> bool:
    return isinstance(data, dict) and "videos" in data


def _check_video(video: Video, source: VideoSource, path: str) -> None:
    """The GT video record must describe the frames of ``source``."""
    if (video.height, video.width) != (source.height, source.width):
        raise InputError(f"video {video.id} is {video.height}x{video.width} (HxW) but the frames "
                         f"of {source.path} are {source.height}x{source.width}",
                         path, f"video {video.id}", "height/width")
    if source.num_frames is not None and video.length != source.num_frames:
        raise InputError(f"video {video.id} has {video.length} frames but {source.path} has "
                         f"{source.num_frames}", path, f"video {video.id}", "length")


def _gt_video(ds: YTVISDataset, vid: int, path: str) -> Video:
    if vid not in ds.videos:
        known = sorted(ds.videos)
        raise InputError(f"unknown video id {vid} (the file has {len(known)} videos, ids "
                         f"{known[:10]}{'...' if len(known) > 10 else ''})", path, None, "video_id")
    return ds.videos[vid]


def _select_unchecked(records: list, vid: int, source: VideoSource, path: str) -> list[dict]:
    """Validate the records of video ``vid`` against the source frames directly (no GT)."""
    out, length = [], source.num_frames
    for i, r in enumerate(records):
        rec = f"results[{i}]"
        if _req(r, "video_id", path, rec, int) != vid:
            continue
        cid = _req(r, "category_id", path, rec, int)
        score = _check_number(_req(r, "score", path, rec, (int, float)), path, rec, "score")
        segs_raw = _req(r, "segmentations", path, rec, list)
        if length is None:  # stream without a frame count: the first record sets it
            length = len(segs_raw)
        segs = check_segmentations(segs_raw, (source.height, source.width), path, rec,
                                   length=length, owner=str(source.path))
        out.append({"video_id": vid, "category_id": cid, "score": score, "segmentations": segs})
    return out


def _frame_count(source: VideoSource) -> int:
    if source.num_frames is not None:
        return source.num_frames
    return sum(1 for _ in source)  # one decoding pass; only when the container has no count


def run(args: argparse.Namespace) -> int:
    from tubelet.video.reader import open_video
    from tubelet.video.render import render_video
    if args.out is None and args.png_dir is None:
        raise InputError("nothing to write: give --out and/or --png-dir")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must be in [0, 1], got {args.alpha}")
    from tubelet.utils.fileio import check_output_dir, check_output_file
    if args.out:
        check_output_file(args.out, "--out")
    if args.png_dir:
        check_output_dir(args.png_dir, "--png-dir")
    vid = args.video_id
    data = read_json(args.results)
    gt = load_ytvis(args.gt) if args.gt else None
    with open_video(args.source) as source:
        if _is_gt(data):  # draw ground-truth annotations
            ds = load_ytvis(data, path=args.results)
            video = _gt_video(ds, vid, args.results)
            _check_video(video, source, args.results)
            if gt is not None:
                _check_video(_gt_video(gt, vid, args.gt), source, args.gt)
            anns = ds.annotations_of(vid)
            names = (gt or ds).categories
            records = [{"category_id": a.category_id, "score": 1.0,
                        "segmentations": a.segmentations} for a in anns]
            length, with_scores = video.length, False
        else:
            if isinstance(data, dict) and "annotations" in data:
                data = data["annotations"]
            if not isinstance(data, list):
                raise InputError(f"expected a list of result records or a ground-truth object, "
                                 f"got {type(data).__name__}", args.results)
            if gt is not None:
                video = _gt_video(gt, vid, args.gt)
                _check_video(video, source, args.gt)
                # masks checked against the GT video size, itself checked against the frames
                records = [r for r in validate_results(data, gt, args.results)
                           if r["video_id"] == vid]
                names, length = gt.categories, video.length
            else:
                records = _select_unchecked(data, vid, source, args.results)
                names = {}
                length = len(records[0]["segmentations"]) if records else None
            if not records:
                if gt is None:  # without GT an id with no record may be a typo: say so
                    raise InputError(f"no result record has video id {vid}", args.results,
                                     None, "video_id")
                print(f"note: {args.results} has no records for video {vid}; drawing none")
            with_scores = True
            records = [r for r in records if r["score"] >= args.score_thr]
        if length is None:
            length = _frame_count(source)
        # Track id = rank by decreasing score, from 1 (0 is the id-PNG background).
        order = sorted(range(len(records)), key=lambda i: -records[i]["score"])
        records = [records[i] for i in order]
        instances = VideoInstances(
            source.height, source.width, length, [r["segmentations"] for r in records],
            [r["score"] for r in records], [r["category_id"] for r in records],
            np.arange(1, len(records) + 1))
        n = render_video(source, instances, names, out_mp4=args.out, png_dir=args.png_dir,
                         progress=not args.no_progress, alpha=args.alpha,
                         with_scores=with_scores, results_path=args.results)
    outs = " and ".join(x for x in (args.out, args.png_dir) if x)
    print(f"wrote {outs}: {n} frames, {len(records)} tracks of video {vid}")
    return 0
