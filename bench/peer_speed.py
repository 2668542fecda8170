"""Side-by-side throughput: tubelet's online methods vs Ultralytics yolo11n-seg + ByteTrack.

    python bench/peer_speed.py [--methods condinst-track,yolov4-seg,...] [--sizes 192x320,360x640]
                               [--frames 40] [--threads 2] [--rounds 5] [--peer-max-det 10]

Both run in one process on the same frames, alternating round by round (A B A B ...), so machine
load hits both alike; the figure to read is each method's ``ratio`` = its median frames/s over the
peer's median frames/s at the same input size (absolute frames/s on a shared 2-core machine swing
2-3x with load); ``paired_ratio`` is the median over rounds of each round's ratio to the peer's
run beside it, which cancels load that drifts between rounds. Needs the peer package
(``pip install ultralytics``); without it the script prints ``{"skipped": ...}`` and exits 0.

What is timed, per frame after 3 warm-up frames of each video:
  * tubelet: the whole streaming path of ``tubelet predict`` (resize, network, mask paste, RLE
    encoding, tracker) with the method's bundled weights (``--weights NAME=PATH`` to override);
  * peer: ``YOLO("yolo11n-seg.yaml").track(frame, tracker="bytetrack.yaml", persist=True)`` at the
    same ``imgsz`` (letterbox, network, NMS, mask decode, ByteTrack). Its trained weights cannot be
    downloaded here, so the network is randomly initialised; a random head scores nothing above
    the default 0.25, so the peer is run with ``conf=0`` and ``max_det=--peer-max-det`` (default 10):
    it decodes and tracks that many masks per frame, the work a trained model does on a busy scene.
    Network cost does not depend on the weights' values.

Frames: the synthetic generator's ``bench`` look rendered at each size (the same frames for both),
or ``--source DIR`` (a folder of JPEG/PNG frames, e.g. a DAVIS sequence) resized to each size.
Prints one JSON object (the peer's own messages go to stderr). At 360x640 the peer pads to
384x640 (stride 32); ``yolov4-seg``'s CPU preset letterboxes every frame to its fixed square
(256), so its row is not at equal input size -- unless ``--yolo-equal-size``: then it letterboxes
to the frame's long side with rectangular padding (``model.model.input_size=W
model.test_rect=true``), i.e. the peer's own input (192x320, 384x640). Its weights were trained
at 256, so only the speed of that row means anything, not its detections.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import statistics
from pathlib import Path

import numpy as np
import torch
from stream_timing import synthetic_frames, time_stream

ONLINE = ("condinst-track", "yolov4-seg", "iai-condinst", "contrastive-online")


def load_frames(size: tuple[int, int], n: int, source: str | None) -> list[np.ndarray]:
    """``n`` RGB uint8 frames ``[H, W, 3]`` at ``size``."""
    h, w = size
    if source is None:
        return synthetic_frames(h, w, n)
    from PIL import Image
    files = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"error: --source {source}: no .jpg/.png frames")
    files = (files * (n // len(files) + 1))[:n]
    return [np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR)) for p in files]


def frames_per_s(run_video, frames: list[np.ndarray]) -> float:
    """frames/s of ``run_video(frames)`` after 3 warm-up frames."""
    n, seconds = time_stream(run_video(frames), warmup=3)
    return n / seconds


def peer_runner(size: tuple[int, int], max_det: int):
    """A function frames -> iterator over yolo11n-seg + ByteTrack results, one per frame."""
    from ultralytics import YOLO
    model = YOLO("yolo11n-seg.yaml", task="segment")  # random init: no download
    imgsz = [size[0], size[1]]

    def run(frames):
        for i, rgb in enumerate(frames):
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            res = model.track(bgr, persist=i > 0, tracker="bytetrack.yaml", imgsz=imgsz, conf=0.0,
                              max_det=max_det, verbose=False)
            yield res[0]
    return run


def ours_runner(method: str, weights: str | None, size: tuple[int, int],
                yolo_equal_size: bool = False):
    from tubelet.engine.loading import bundled_weights, load_method
    h, w = size
    path = weights or str(bundled_weights(method))
    over = [f"model.test_short_side={min(h, w)}", f"model.test_max_size={max(h, w)}"]
    if method == "yolov4-seg" and yolo_equal_size:
        over += [f"model.model.input_size={max(h, w)}", "model.test_rect=true"]
    model, _ = load_method(None, path, over)
    return model.predict_video


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default=",".join(ONLINE))
    ap.add_argument("--weights", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--sizes", default="192x320,360x640")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peer-max-det", type=int, default=10)
    ap.add_argument("--yolo-equal-size", action="store_true",
                    help="yolov4-seg letterboxed to the frame's long side (rect), not its 256 square")
    ap.add_argument("--source", default=None, help="a folder of frames (default: synthetic)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its logger keeps the stdout of its import
            import ultralytics  # noqa: F401
    except ImportError:
        print(json.dumps({"skipped": "ultralytics is not installed (pip install ultralytics)"}))
        return
    import cv2
    cv2.setNumThreads(args.threads)
    weights = dict(kv.split("=", 1) for kv in args.weights)
    methods = [m for m in args.methods.split(",") if m]
    out = {"threads": args.threads, "frames": args.frames, "rounds": args.rounds,
           "peer": "ultralytics yolo11n-seg (random init, conf 0, max_det "
                   f"{args.peer_max_det}) + ByteTrack", "source": args.source or "synthetic bench",
           "yolo_equal_size": args.yolo_equal_size, "results": []}
    with contextlib.redirect_stdout(sys.stderr):  # the peer prints warnings on stdout
        measure(args, methods, weights, out)
    print(json.dumps(out, indent=1))


def measure(args, methods: list[str], weights: dict[str, str], out: dict) -> None:
    """Fill ``out["results"]``: one row per size."""
    for size_s in args.sizes.split(","):
        size = tuple(int(v) for v in size_s.split("x"))
        frames = load_frames(size, args.frames, args.source)
        runners = {"peer": peer_runner(size, args.peer_max_det)}
        runners.update({m: ours_runner(m, weights.get(m), size, args.yolo_equal_size)
                        for m in methods})
        fps: dict[str, list[float]] = {k: [] for k in runners}
        per_frame = {}  # instances per frame in the untimed video (lazy init, caches)
        for name, run in runners.items():
            counts = [len(o.boxes) if name == "peer" else len(o.masks) for o in run(frames)]
            per_frame[name] = sum(counts) / len(counts)
        for _ in range(args.rounds):
            for name, run in runners.items():
                fps[name].append(frames_per_s(run, frames))
        peer = statistics.median(fps["peer"])
        row = {"size": size_s, "peer_frames_per_s": peer, "peer_runs": fps["peer"],
               "peer_instances_per_frame": per_frame["peer"], "methods": {}}
        for m in methods:
            med = statistics.median(fps[m])
            # paired: each round's ratio to the peer's run beside it (load drifts between
            # rounds hit both runs of a round alike), then the median over rounds
            paired = statistics.median(a / b for a, b in zip(fps[m], fps["peer"]))
            row["methods"][m] = {"frames_per_s": med, "ratio": med / peer,
                                 "paired_ratio": paired, "runs": fps[m],
                                 "instances_per_frame": per_frame[m]}
        out["results"].append(row)


if __name__ == "__main__":
    main()
