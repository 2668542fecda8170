"""Where a results file loses AP: classification, mask / track quality, or ranking.

    python bench/ap_breakdown.py --gt data/synth_bench/valid/instances.json \\
        --results runs/co_variants9b/memory/results.json [--json FILE]

Three views of the same records (the official metric throughout, ``tubelet.eval.evaluate``):

* ``official``: AP / AP50 / AP75 / AR10 as scored.
* ``class_agnostic``: every GT and result relabelled to one category (a record then competes with
  all records of its video): the AP a perfect classifier of these tracks would approach. A large
  gain over ``official`` means the categories, not the masks, cost the AP.
* ``oracle``, per GT instance: the best video IoU any result track reaches with it (``any``: of
  any category; ``same``: of its own category), and the rank of that track among its video's
  records by score. The share of GT whose best IoU reaches 0.5 / 0.75 bounds the recall the masks
  and identities allow at those thresholds, whatever the scores; a low share means tracks that
  break, drift or never start (mask / identity quality), a high share with a low AP means ranking
  (scores, duplicates).

Video IoU is the evaluator's own (``tubelet.eval.video_iou``). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np

from tubelet.data.ytvis import ResultRecords, YTVISDataset, load_results, load_ytvis
from tubelet.eval import evaluate
from tubelet.eval.video_iou import frame_areas, pair_ious
from tubelet.utils.fileio import write_json

KEYS = ("AP", "AP50", "AP75", "AR1", "AR10")


def one_category(gt: YTVISDataset, results: list[dict]) -> tuple[YTVISDataset, list[dict]]:
    """GT and results with every category replaced by category 1."""
    anns = [replace(a, category_id=1) for a in gt.annotations]
    agn = YTVISDataset(dict(gt.videos), {1: "object"}, anns, gt.path, gt.info, gt.mask_areas)
    return agn, ResultRecords([{**r, "category_id": 1} for r in results],
                              getattr(results, "mask_areas", None))


def oracle(gt: YTVISDataset, results: list[dict]) -> list[dict]:
    """Per GT instance: best video IoU over all results of its video (and of its category), and
    the score rank (0 = best) of the best track among the video's records."""
    by_video: dict[int, list[dict]] = {}
    for r in results:
        by_video.setdefault(r["video_id"], []).append(r)
    rows = []
    for vid, video in gt.videos.items():
        anns = gt.annotations_of(vid)
        recs = sorted(by_video.get(vid, []), key=lambda r: -r["score"])
        if not anns:
            continue
        g_tracks = [a.segmentations for a in anns]
        d_tracks = [r["segmentations"] for r in recs]
        ga, da = frame_areas(g_tracks, video.length), frame_areas(d_tracks, video.length)
        if recs:
            pd, pg = np.meshgrid(np.arange(len(recs)), np.arange(len(anns)), indexing="ij")
            ious = pair_ious(d_tracks, g_tracks, da, ga, pd.ravel(), pg.ravel(), min_iou=0.0)
            ious = ious.reshape(len(recs), len(anns))  # [Nd, Ng]
        else:
            ious = np.zeros((0, len(anns)))
        cats = np.array([r["category_id"] for r in recs])
        for j, a in enumerate(anns):
            col = ious[:, j]
            best_any = int(col.argmax()) if len(col) else -1
            same = np.flatnonzero(cats == a.category_id) if len(cats) else np.zeros(0, int)
            best_same = int(same[col[same].argmax()]) if len(same) else -1
            rows.append({"video_id": vid, "gt_id": a.id,
                         "iou_any": float(col[best_any]) if best_any >= 0 else 0.0,
                         "rank_any": best_any,
                         "iou_same": float(col[best_same]) if best_same >= 0 else 0.0,
                         "rank_same": best_same})
    return rows


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    out = {"gt_instances": n}
    for kind in ("any", "same"):
        iou = np.array([r[f"iou_{kind}"] for r in rows])
        rank = np.array([r[f"rank_{kind}"] for r in rows])
        out[kind] = {"mean_best_iou": round(float(iou.mean()), 4) if n else None,
                     "share_iou_ge_0.5": round(float((iou >= 0.5).mean()), 4) if n else None,
                     "share_iou_ge_0.75": round(float((iou >= 0.75).mean()), 4) if n else None,
                     "median_rank_when_ge_0.5": (float(np.median(rank[iou >= 0.5]))
                                                 if (iou >= 0.5).any() else None)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gt", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    gt = load_ytvis(args.gt)
    results = load_results(args.results, gt)
    agn_gt, agn_res = one_category(gt, results)
    official, agnostic = evaluate(gt, results), evaluate(agn_gt, agn_res)
    report = {"gt": args.gt, "results": args.results, "records": len(results),
              "official": {k: official[k] for k in KEYS},
              "class_agnostic": {k: agnostic[k] for k in KEYS},
              "oracle": summary(oracle(gt, results))}
    if args.json:
        write_json(args.json, report, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
