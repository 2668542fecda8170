"""How well does propose-reduce's Seq-Prop head propagate a mask? Ground-truth masks in, IoU out.

    python bench/propagation_accuracy.py [--weights src/tubelet/weights/propose_reduce_synth.pt]
        [--gt data/synth_bench/valid/instances.json] [--images data/synth_bench/valid/JPEGImages]
        [--videos 10] [key=value ...]

For each video the ground-truth masks of frame 0 (every object visible there) are the key-frame
masks, resized to the test size as the detector's would be, and propagated forward through the
whole video by the method's own pass (:meth:`ProposeReduce._propagate`: memory every ``mem_step``
frames, soft aggregation, masks > 0.5 at the original size). Each propagated mask is compared with
the object's ground truth in every later frame where the object is visible (mask IoU), bucketed
by the distance to the key frame. The ``copy`` row is the do-nothing baseline: frame 0's ground-
truth mask repeated in every frame. Any error comes from the Seq-Prop head, not the detector.
``by_size`` buckets the same pairs by the object's size in frame 0 (square root of its area, in
pixels of the original frame). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from tubelet.data.ytvis import load_ytvis  # noqa: E402
from tubelet.engine.loading import load_method  # noqa: E402
from tubelet.methods.propose_reduce.inference import SequenceProposals  # noqa: E402
from tubelet.ops.mask_iou import mask_iou_rle  # noqa: E402
from tubelet.video.reader import DatasetVideo  # noqa: E402

# distance buckets (frames from the key frame), in report order; the last one is open
BUCKETS = {"1-2": 2, "3-5": 5, "6-10": 10, "11-20": 20, "21+": None}
# object size buckets: sqrt(frame-0 area) in pixels, upper bounds exclusive; the last one is open
SIZES = {"<16": 16, "16-32": 32, "32-64": 64, "64+": None}


def bucket(d: int) -> str:
    return next(name for name, hi in BUCKETS.items() if hi is None or d <= hi)


def size_bucket(area: float) -> str:
    side = float(np.sqrt(area))
    return next(name for name, hi in SIZES.items() if hi is None or side < hi)


def load_propose_reduce(weights: str, overrides: list[str], fuse: bool = True,
                        missing_ok: tuple[str, ...] = ()):
    """``(model, cfg)`` of a propose-reduce weights file; any other method is refused.
    ``missing_ok``: parameter prefixes the file may lack (a head grown by an option)."""
    model, cfg = load_method(None, weights, overrides, fuse=fuse, missing_ok=missing_ok)
    if cfg.method != "propose-reduce":
        raise SystemExit(f"{weights}: a {cfg.method} model, not propose-reduce")
    return model, cfg


def iou(a: dict | None, b: dict | None) -> float:
    """Mask IoU of two compressed RLEs (None = empty), the project's :func:`mask_iou_rle`."""
    return float(mask_iou_rle([a], [b])[0, 0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="src/tubelet/weights/propose_reduce_synth.pt")
    ap.add_argument("--gt", default="data/synth_bench/valid/instances.json")
    ap.add_argument("--images", default="data/synth_bench/valid/JPEGImages")
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, cfg = load_propose_reduce(args.weights, args.overrides)
    gt = load_ytvis(args.gt)
    scores = {"seq_prop": defaultdict(list), "copy": defaultdict(list)}
    sized = {"seq_prop": defaultdict(list), "copy": defaultdict(list)}
    objects = 0
    with torch.inference_mode():
        for vid in sorted(gt.videos)[: args.videos]:
            video = DatasetVideo.from_record(gt.videos[vid], args.images)
            anns = [a for a in gt.annotations_of(vid) if a.segmentations[0] is not None]
            if not anns:
                continue
            objects += len(anns)
            feats = model._features(video, 0)
            h, w = feats.image_sizes[0]
            full = np.stack([mask_utils.decode(a.segmentations[0]) for a in anns])  # [K, H, W]
            key = F.interpolate(torch.from_numpy(full)[:, None].float(), size=(h, w),
                                mode="nearest")[:, 0]  # [K, h, w] at the test size
            props = SequenceProposals(len(video), cfg.model.model.num_classes)
            first = props.add(len(anns), key=0)
            model._propagate(video, props, first, 0, feats, key.to(feats.p2.device),
                             range(1, len(video)), (video.height, video.width))
            for k, a in enumerate(anns):
                size = size_bucket(float(full[k].sum()))
                for t in range(1, len(video)):
                    g = a.segmentations[t]
                    if g is None:
                        continue
                    for name, v in (("seq_prop", iou(props.masks[first + k][t], g)),
                                    ("copy", iou(a.segmentations[0], g))):
                        scores[name][bucket(t)].append(v)
                        sized[name][size].append(v)
    out = {"weights": args.weights, "gt": args.gt, "videos": args.videos, "objects": objects,
           "overrides": args.overrides}
    for name, by in scores.items():
        every = [v for vals in by.values() for v in vals]
        out[name] = {"mean_iou": round(float(np.mean(every)), 4) if every else None,
                     "pairs": len(every),
                     "by_distance": {b: {"mean_iou": round(float(np.mean(by[b])), 4),
                                         "pairs": len(by[b])} for b in BUCKETS if by[b]},
                     "by_size": {b: {"mean_iou": round(float(np.mean(sized[name][b])), 4),
                                     "pairs": len(sized[name][b])}
                                 for b in SIZES if sized[name][b]}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
