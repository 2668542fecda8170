"""Why a DAVIS sequence scores what it scores: its output tracks against the ground truth.

    python bench/davis_tracks.py --cv runs/objects_cv [--config configs/condinst_track_objects.yaml]
        [--gt data/davis/davis2016.json] [--images ../shared/data/davis2016/JPEGImages/480p]
        [--top 3] [--json FILE] [key=value ...]

Each sequence is predicted by the fold model of ``bench/davis_cv.py`` that never saw it
(``--cv DIR`` holds ``fold0`` ... ``fold4``; the folds are davis_cv's), with the config's current
inference settings and any ``key=value`` overrides (e.g. ``model.test_short_side=288``). For the
``--top`` best-scored tracks of each sequence it reports: frames covered, first / last frame,
score, the video IoU with the sequence's one GT object (the official metric's matching IoU,
``tubelet.eval.video_iou.pair_ious``) and, averaged over the frames where both have a mask, the
predicted / GT area, recall (|P n G| / |G|) and precision (|P n G| / |P|). With one GT object per
sequence, the sequence's AP is the share of the 10 thresholds 0.50 ... 0.95 that its best-ranked
track's video IoU reaches, so these numbers say whether a low AP comes from identity (a track that
breaks) or from masks (one whole track with a low IoU). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from pycocotools import mask as mask_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from davis_cv import folds  # noqa: E402

from tubelet.data.ytvis import load_results, load_ytvis  # noqa: E402
from tubelet.engine.loading import load_method  # noqa: E402
from tubelet.engine.predict import predict_records  # noqa: E402
from tubelet.eval.video_iou import frame_areas, pair_ious  # noqa: E402
from tubelet.utils.fileio import write_json  # noqa: E402


def track_report(track: list, gt: list, score: float) -> dict:
    """One predicted track ``[T]`` RLE-or-None against the GT track ``[T]``."""
    t = len(gt)
    areas_p, areas_g = frame_areas([track], t), frame_areas([gt], t)  # [1, T] each
    iou = float(pair_ious([track], [gt], areas_p, areas_g, np.array([0]), np.array([0]),
                          min_iou=0.0)[0])
    present = [i for i, m in enumerate(track) if m is not None]
    ratio, recall, precision = [], [], []
    for i in present:
        if gt[i] is None or areas_g[0, i] == 0 or areas_p[0, i] == 0:
            continue
        inter = float(mask_utils.area(mask_utils.merge([track[i], gt[i]], 1)))
        ratio.append(areas_p[0, i] / areas_g[0, i])
        recall.append(inter / areas_g[0, i])
        precision.append(inter / areas_p[0, i])

    def mean(v: list) -> float | None:
        return round(float(np.mean(v)), 3) if v else None
    return {"score": round(score, 4), "frames": len(present), "length": t,
            "first": present[0] if present else None, "last": present[-1] if present else None,
            "video_iou": round(iou, 4), "area_ratio": mean(ratio), "recall": mean(recall),
            "precision": mean(precision)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cv", required=True, help="the --out folder of bench/davis_cv.py")
    ap.add_argument("--config", default="configs/condinst_track_objects.yaml")
    ap.add_argument("--gt", default="data/davis/davis2016.json")
    ap.add_argument("--images", default="../shared/data/davis2016/JPEGImages/480p")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("overrides", nargs="*", help="key=value inference overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gt = load_ytvis(args.gt)
    by_name = {v.name: i for i, v in gt.videos.items()}
    report = {"cv": args.cv, "config": args.config, "overrides": args.overrides, "sequences": {}}
    for k, names in enumerate(folds(list(by_name))):
        model, _ = load_method(args.config, os.path.join(args.cv, f"fold{k}", "last.pt"),
                               args.overrides)
        for name in names:
            vid = by_name[name]
            sub = gt.subset([vid])
            anns = sub.annotations_of(vid)
            if len(anns) != 1:
                raise SystemExit(f"error: {args.gt}: video {name!r} has {len(anns)} annotations, "
                                 "expected the one DAVIS 2016 object")
            recs = load_results(predict_records(model, sub, args.images, [vid], progress=False),
                                sub)
            recs.sort(key=lambda r: -r["score"])
            report["sequences"][name] = {
                "fold": k, "tracks": len(recs),
                "top": [track_report(r["segmentations"], anns[0].segmentations, r["score"])
                        for r in recs[: args.top]]}
            print(f"{name}: {len(recs)} tracks", file=sys.stderr)
    if args.json:
        write_json(args.json, report, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
