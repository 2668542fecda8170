"""``tubelet track DETECTIONS.jsonl OUT.json --tracker NAME [key=value ...]``: associate
per-frame detections into video instances with one of the shared trackers.

Input: one JSON object per line and frame, the frames of a video on consecutive lines, in order
(the format is in :mod:`tubelet.data.detections`, which reads it): ``video_id``, ``frame``,
``height``, ``width`` and ``detections`` (``segmentation``, ``score``, ``category_id`` or
``class_probs``; ``embedding`` for tracker "memory", ``id_probs`` for tracker "iai").

The file is read line by line and only the current video's tracker is alive, so memory does not
grow with the file. ``key=value`` arguments override fields of the tracker's config dataclass.
"""
from __future__ import annotations

from tubelet.errors import InputError


def register(sub) -> None:
    # no tubelet.trackers import here: building the parser must not pull in torch
    p = sub.add_parser("track", help="associate per-frame detections (JSON lines) into tracks")
    p.add_argument("detections", help="JSON-lines file, one frame per line")
    p.add_argument("out", help="output YouTube-VIS results JSON")
    # "--tracker greedy gate_thr=0.9 ...": the overrides may follow the name (argparse would not
    # give positionals that come after an option to a nargs="*" positional)
    p.add_argument("--tracker", required=True, nargs="+", metavar=("NAME", "key=value"),
                   help="association method (greedy, memory, iai, naive), then optional config "
                        "overrides; put it after the two file arguments")
    p.add_argument("--categories", default=None,
                   help="comma-separated category ids, the columns of class_probs (default: the "
                        "sorted keys of the first class_probs in the file)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="more tracker config overrides, e.g. gate_thr=0.95 class_weight=0")
    p.set_defaults(func=run)
    from tubelet.cli.main import allow_intermixed
    allow_intermixed(p)


def run(args) -> int:
    from tubelet.data.detections import DetectionReader
    from tubelet.data.ytvis import save_results
    from tubelet.trackers import build_tracker, list_trackers, tracker_config_class
    from tubelet.utils.config import apply_overrides

    from tubelet.utils.fileio import check_output_file
    check_output_file(args.out)
    path = str(args.detections)
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
    reader = DetectionReader(path, categories, require=build_tracker(name, cfg).requires,
                             required_by=f"tracker '{name}'")
    tracker, video, records, n_frames, n_videos = None, None, [], 0, 0
    for frame in reader:
        if frame.video_id != video:  # one tracker per video, alive only while its frames come
            if tracker is not None:
                records.extend(tracker.finalize().to_results(video))
            tracker = build_tracker(name, cfg, category_ids=reader.categories)
            video, n_videos = frame.video_id, n_videos + 1
        if tracker.category_ids is None and reader.categories is not None:
            tracker.category_ids = list(reader.categories)  # known once class_probs were seen
        try:
            tracker.update(frame.instances)
        except ValueError as exc:
            raise reader.error(frame.line, str(exc)) from None
        n_frames += 1
    if tracker is None:
        raise InputError("no frames in the file", path)
    records.extend(tracker.finalize().to_results(video))
    save_results(args.out, records)
    print(f"{path}: {n_frames} frames in {n_videos} videos -> {len(records)} records "
          f"({name} tracker): {args.out}")
    return 0
