"""Tests of the YouTube-VIS / OVIS evaluator (``tubelet.eval``).

Expected numbers come from hand derivation (the comments show the arithmetic) or from
:func:`reference_evaluate` below: a slow, obviously-correct evaluator on dense masks, written as
straight loops from the rules of ``shared/EVAL_NOTES.md``, sharing no code with ``tubelet.eval``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.errors import InputError
from tubelet.eval import SUMMARY_KEYS, YTVISEvaluator, evaluate, occlusion_score
from tubelet.eval.matching import greedy_match
from tubelet.eval.video_iou import frame_areas, pair_ious
from tubelet.structures.rle import encode

IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)
AREAS = {"all": (0, 1e10), "small": (0, 128 ** 2), "medium": (128 ** 2, 256 ** 2),
         "large": (256 ** 2, 1e10)}
OCCS = {"light": (0, 0.25), "medium": (0.25, 0.5), "heavy": (0.5, 1)}
OCC_VALUE = {"no_occlusion": 0.0, "slight_occlusion": 0.25, "severe_occlusion": 0.75,
             0: 0.0, 1: 0.25, 2: 0.75}


# ------------------------------------------------------------------------------- builders
def span(h: int, w: int, start: int, stop: int) -> np.ndarray:
    """[H, W] mask with the row-major flat pixels start..stop-1 set."""
    m = np.zeros(h * w, dtype=bool)
    m[start:stop] = True
    return m.reshape(h, w)


def make_gt(videos: dict[int, tuple[int, int, int]], tracks: list[dict],
            categories=(1, 2, 3)) -> dict:
    """GT JSON dict. ``videos``: {id: (T, H, W)}; ``tracks``: {video_id, category_id, masks
    ([T] dense or None), optional id, areas, iscrowd, occlusion}."""
    anns = []
    for i, tr in enumerate(tracks):
        masks = tr["masks"]
        ann = {"id": tr.get("id", i + 1), "video_id": tr["video_id"],
               "category_id": tr["category_id"],
               "segmentations": [None if m is None else encode(m) for m in masks],
               "areas": tr.get("areas", [None if m is None else float(m.sum()) for m in masks]),
               "iscrowd": tr.get("iscrowd", 0)}
        if "occlusion" in tr:
            ann["occlusion"] = tr["occlusion"]
        anns.append(ann)
    return {"videos": [{"id": v, "length": T, "height": H, "width": W,
                        "file_names": [f"v{v}/{t}.jpg" for t in range(T)]}
                       for v, (T, H, W) in videos.items()],
            "categories": [{"id": c, "name": f"cat{c}"} for c in categories],
            "annotations": anns}


def make_results(preds: list[dict]) -> list[dict]:
    """Results list from {video_id, category_id, score, masks ([T] dense or None)}."""
    return [{"video_id": p["video_id"], "category_id": p["category_id"], "score": p["score"],
             "segmentations": [None if m is None else encode(m) for m in p["masks"]]}
            for p in preds]


# ------------------------------------------------------------------------------- reference
def _dense(seg):
    return None if seg is None else mask_utils.decode(seg).astype(bool)


def _video_iou(d: list, g: list) -> float:
    inter = union = 0
    for dm, gm in zip(d, g):
        if dm is not None and gm is not None:
            inter += int((dm & gm).sum())
            union += int((dm | gm).sum())
        elif dm is not None:
            union += int(dm.sum())
        elif gm is not None:
            union += int(gm.sum())
    return inter / union if union > 0 else 0.0


def _occ_score(labels):
    vals = sorted((OCC_VALUE[x] for x in labels if x is not None), reverse=True)
    if not vals:
        return None
    top = vals[:math.ceil(len(vals) / 2)]
    return sum(top) / len(top)


def _eval_video_category(gts, dts, a_rng, o_rng, max_det):
    """One (video, category) -> (scores [D], matched [T][D], ignored [T][D], gt_ignore [G])."""
    for g in gts:
        out = g["area"] < a_rng[0] or g["area"] > a_rng[1]
        if o_rng is not None:
            out = out or g["occ"] is None or g["occ"] < o_rng[0] or g["occ"] > o_rng[1]
        g["_ig"] = bool(g["iscrowd"]) or out
    gts = sorted(gts, key=lambda g: g["_ig"])  # Python's sort is stable
    dts = sorted(dts, key=lambda d: -d["score"])[:max_det]
    T = len(IOU_THRS)
    matched = [[False] * len(dts) for _ in range(T)]
    ignored = [[False] * len(dts) for _ in range(T)]
    for ti, t in enumerate(IOU_THRS):
        taken = [False] * len(gts)
        for di, d in enumerate(dts):
            best, m = min(t, 1 - 1e-10), -1
            for gi, g in enumerate(gts):
                if taken[gi] and not g["iscrowd"]:
                    continue
                if m > -1 and not gts[m]["_ig"] and g["_ig"]:
                    break
                iou = _video_iou(d["masks"], g["masks"])
                if iou < best:
                    continue
                best, m = iou, gi
            if m > -1:
                matched[ti][di] = True
                ignored[ti][di] = gts[m]["_ig"]
                taken[m] = True
        for di, d in enumerate(dts):
            if not matched[ti][di] and (d["area"] < a_rng[0] or d["area"] > a_rng[1]):
                ignored[ti][di] = True
    return [d["score"] for d in dts], matched, ignored, [g["_ig"] for g in gts]


def _precision_recall(per_video, ti):
    """AP-curve of one threshold: per_video = list of (scores, matched, ignored, gt_ig)."""
    scores, tps, fps, n_pos = [], [], [], 0
    for sc, mt, ig, gig in per_video:
        n_pos += sum(1 for x in gig if not x)
        for di, s in enumerate(sc):
            scores.append(s)
            tps.append(mt[ti][di] and not ig[ti][di])
            fps.append(not mt[ti][di] and not ig[ti][di])
    if n_pos == 0:
        return None, None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable
    tp = fp = 0
    rc, pr = [], []
    for i in order:
        tp += tps[i]
        fp += fps[i]
        rc.append(tp / n_pos)
        pr.append(tp / (tp + fp + np.spacing(1)))
    for i in range(len(pr) - 2, -1, -1):
        pr[i] = max(pr[i], pr[i + 1])
    q = []
    for r in REC_THRS:
        idx = next((i for i, x in enumerate(rc) if x >= r), None)
        q.append(0.0 if idx is None else pr[idx])
    return q, (rc[-1] if rc else 0.0)


def reference_evaluate(gt: dict, results: list[dict], video_ids=None,
                       max_dets=(1, 10, 100)) -> dict:
    """The official numbers of ``results`` on ``gt`` (JSON dicts), on ``video_ids`` if given."""
    vids = sorted(v["id"] for v in gt["videos"] if video_ids is None or v["id"] in video_ids)
    cats = sorted(c["id"] for c in gt["categories"])
    gts = []
    for a in gt["annotations"]:
        nz = [x for x in a["areas"] if x]
        gts.append({"video_id": a["video_id"], "category_id": a["category_id"],
                    "iscrowd": a.get("iscrowd", 0),
                    "masks": [_dense(s) for s in a["segmentations"]],
                    "area": float(np.mean(nz)) if nz else 0.0,
                    "occ": _occ_score(a["occlusion"]) if "occlusion" in a else None})
    has_occ = any("occlusion" in a for a in gt["annotations"])
    dts = []
    for r in results:
        if r["category_id"] not in cats:
            continue
        masks = [_dense(s) for s in r["segmentations"]]
        nz = [int(m.sum()) for m in masks if m is not None and m.sum() > 0]
        dts.append({"video_id": r["video_id"], "category_id": r["category_id"],
                    "score": r["score"], "masks": masks, "area": sum(nz) / len(nz) if nz else 0.0})
    settings = [(n, AREAS[n], None) for n in AREAS]
    if has_occ:
        settings += [("occ_" + n, AREAS["all"], OCCS[n]) for n in OCCS]
    prec, rec = {}, {}  # (setting, cat, max_det) -> [T][R] / [T]
    for name, a_rng, o_rng in settings:
        for c in cats:
            for m in max_dets:
                per_video = []
                for v in vids:
                    g = [x for x in gts if x["video_id"] == v and x["category_id"] == c]
                    d = [x for x in dts if x["video_id"] == v and x["category_id"] == c]
                    if g or d:
                        full = _eval_video_category(g, d, a_rng, o_rng, max(max_dets))
                        sc, mt, ig, gig = full
                        per_video.append((sc[:m], [row[:m] for row in mt],
                                          [row[:m] for row in ig], gig))
                curves = [_precision_recall(per_video, ti) for ti in range(len(IOU_THRS))]
                if curves and curves[0][0] is not None:
                    prec[name, c, m] = [q for q, _ in curves]
                    rec[name, c, m] = [r for _, r in curves]

    def mean(vals):
        return float(np.mean(vals)) if vals else -1.0

    def ap(setting="all", ti=None, c_only=None):
        vals = [x for (s, c, m), qs in prec.items() if s == setting and m == max(max_dets)
                and (c_only is None or c == c_only)
                for t, q in enumerate(qs) if ti is None or t == ti for x in q]
        return mean(vals)

    def ar(setting="all", m=max(max_dets)):
        return mean([x for (s, c, mm), rs in rec.items() if s == setting and mm == m for x in rs])

    md = sorted(max_dets)
    out = {"AP": ap(), "AP50": ap(ti=0), "AP75": ap(ti=5), "AP_s": ap("small"),
           "AP_m": ap("medium"), "AP_l": ap("large"), f"AR{md[0]}": ar(m=md[0]),
           f"AR{md[1]}": ar(m=md[1]), f"AR{md[2]}": ar(m=md[2]), "AR_s": ar("small"),
           "AR_m": ar("medium"), "AR_l": ar("large")}
    if has_occ:
        for n in OCCS:
            out["AP_occ_" + n] = ap("occ_" + n)
            out["AR_occ_" + n] = ar("occ_" + n)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    out["per_category"] = {names[c]: ap(c_only=c) for c in cats}
    return out


# ------------------------------------------------------------------------------- helpers
def run(gt_dict: dict, preds: list[dict], **kw) -> dict:
    gt = load_ytvis(gt_dict)
    return evaluate(gt, load_results(make_results(preds), gt), **kw)


def assert_close(got: dict, want: dict, tol: float = 1e-9, keys=None) -> None:
    for k in keys or want:
        if isinstance(want[k], dict):
            assert_close(got[k], want[k], tol)
        else:
            assert got[k] == pytest.approx(want[k], abs=tol), k


def hand_case():
    """EVAL_NOTES' hand-checkable case: 2 videos, categories 1 and 2 (and 3 without GT), 8x10
    frames. Matched video IoUs: video 1 cat 1 = 50/60, video 2 cat 1 = 50/80, video 2 cat 2 = 1."""
    H, W = 8, 10
    s = lambda a, b: span(H, W, a, b)  # noqa: E731
    gts = [
        # frames: both null | I=15,U=20 | I=35,U=35 | GT only (3) | prediction only (2)
        {"video_id": 1, "category_id": 1, "masks": [None, s(0, 20), s(0, 35), s(0, 3), None]},
        # I=20,U=40 | I=30,U=30 | prediction only (10) | both null
        {"video_id": 2, "category_id": 1, "masks": [s(0, 30), s(0, 30), None, None]},
        {"video_id": 2, "category_id": 2, "masks": [s(40, 60), s(40, 60), s(40, 60), None]},
    ]
    p = lambda v, c, score, masks: {"video_id": v, "category_id": c, "score": score,  # noqa: E731
                                    "masks": masks}
    preds = [
        p(1, 1, 0.9, [None, s(5, 20), s(0, 35), None, s(0, 2)]),  # the 50/60 match
        p(1, 1, 0.3, [None, None, s(60, 70), None, None]),        # FP
        p(1, 2, 0.2, [s(0, 5), None, None, None, None]),          # FP, no cat-2 GT in video 1
        p(2, 1, 0.8, [s(10, 40), s(0, 30), s(0, 10), None]),      # the 50/80 match
        p(2, 2, 0.7, [s(40, 60), s(40, 60), s(40, 60), None]),    # perfect
        p(2, 2, 0.1, [s(70, 80), None, None, None]),              # FP
        p(2, 3, 0.6, [s(0, 9), None, None, None]),                # category without GT
        p(2, 99, 0.99, [s(0, 9), None, None, None]),              # category not in the GT
    ]
    return make_gt({1: (5, H, W), 2: (4, H, W)}, gts, categories=(1, 2, 3, 99)), preds


# ------------------------------------------------------------------------------- hand-derived
def test_hand_case_matches_official_numbers():
    gt, preds = hand_case()
    gt["categories"] = gt["categories"][:3]  # category 99 absent from the GT: ignored
    out = run(gt, preds)
    # cat 1: 3 thresholds with both GTs found (AP_t = 1), 4 with recall 0.5 (AP_t = 51/101), 3 with
    # none; cat 2: AP 1 at every threshold. Official output: 0.750990 / 1.0 / 0.752475 / 0.75.
    cat1 = (3 * 1 + 4 * 51 / 101) / 10
    assert out["AP"] == pytest.approx((1 + cat1) / 2, abs=1e-12)
    assert out["AP"] == pytest.approx(0.750990, abs=1e-6)
    assert out["AP50"] == pytest.approx(1.0, abs=1e-12)
    assert out["AP75"] == pytest.approx((1 + 51 / 101) / 2, abs=1e-12)
    assert out["AP75"] == pytest.approx(0.752475, abs=1e-6)
    for k in ("AR1", "AR10", "AR100", "AR_s"):
        assert out[k] == pytest.approx((1 + (3 + 4 * 0.5) / 10) / 2, abs=1e-12)
    assert out["AP_s"] == out["AP"]  # every track is small
    for k in ("AP_m", "AP_l", "AR_m", "AR_l"):
        assert out[k] == -1
    assert out["per_category"] == pytest.approx({"cat1": cat1, "cat2": 1.0, "cat3": -1.0})
    assert set(SUMMARY_KEYS) <= set(out)
    assert_close(out, reference_evaluate(gt, make_results(preds)))


def test_2022_short_long_split():
    gt, preds = hand_case()
    out = run(gt, preds, long_video_ids=[2])
    # short = video 1: cat 1 found at the 7 thresholds <= 50/60 -> 0.7 (cats 2, 3, 99: no GT).
    # long = video 2: cat 1 found at 3 thresholds <= 0.625 -> 0.3; cat 2 -> 1.0.
    assert out["short"]["AP"] == pytest.approx(0.7, abs=1e-12)
    assert out["long"]["AP"] == pytest.approx(0.65, abs=1e-12)
    assert out["mAP_2022"] == pytest.approx(0.675, abs=1e-12)
    res = make_results(preds)
    assert_close(out["short"], reference_evaluate(gt, res, video_ids={1}), keys=SUMMARY_KEYS)
    assert_close(out["long"], reference_evaluate(gt, res, video_ids={2}), keys=SUMMARY_KEYS)
    with pytest.raises(InputError, match="long video id 7"):
        run(gt, preds, long_video_ids=[7])


def test_duplicate_predictions_of_one_gt():
    # Two GTs of one category; two identical perfect predictions of the first (the TrackEval defect
    # matches that GT twice, AP 1.0). Correct: TP then FP, recall 0.5 -> AP = 51/101 = 0.50495.
    H, W = 6, 6
    gts = [{"id": 0, "video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 10)]},
           {"id": 1, "video_id": 1, "category_id": 1, "masks": [span(H, W, 20, 30)]}]
    preds = [{"video_id": 1, "category_id": 1, "score": s, "masks": [span(H, W, 0, 10)]}
             for s in (0.9, 0.8)]
    out = run(make_gt({1: (1, H, W)}, gts), preds)
    assert out["AP"] == pytest.approx(51 / 101, abs=1e-12)
    assert out["AP"] == pytest.approx(0.50495, abs=1e-5)
    assert out["AR100"] == pytest.approx(0.5, abs=1e-12)


def test_crowd_gt_is_ignore_and_reusable():
    H, W = 10, 10
    gts = [{"video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 30)]},
           {"video_id": 1, "category_id": 1, "masks": [span(H, W, 50, 90)], "iscrowd": 1}]
    preds = [{"video_id": 1, "category_id": 1, "score": 0.9, "masks": [span(H, W, 50, 90)]},
             {"video_id": 1, "category_id": 1, "score": 0.8, "masks": [span(H, W, 52, 90)]},
             {"video_id": 1, "category_id": 1, "score": 0.7, "masks": [span(H, W, 0, 30)]}]
    out = run(make_gt({1: (1, H, W)}, gts), preds)
    # Both crowd matches are ignored (not FPs), so the regular GT is found at precision 1.
    assert out["AP"] == pytest.approx(1.0, abs=1e-12)
    # A regular GT is preferred to a crowd one: IoU(p, regular) = 30/44, IoU(p, crowd 0..50) =
    # 44/50. t <= 0.65: TP; 0.70..0.85: matched to the crowd -> ignored; 0.90, 0.95: FP.
    gts = [{"video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 30)]},
           {"video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 50)], "iscrowd": 1}]
    preds = [{"video_id": 1, "category_id": 1, "score": 0.9, "masks": [span(H, W, 0, 44)]}]
    out = run(make_gt({1: (1, H, W)}, gts), preds)
    assert out["AP"] == pytest.approx(0.4, abs=1e-12)
    assert out["AR100"] == pytest.approx(0.4, abs=1e-12)


def test_iou_tie_goes_to_the_later_gt_and_threshold_is_inclusive():
    # d1 has IoU exactly 0.5 with both GTs (30/60) and takes the later one, leaving A for d2.
    H, W = 10, 10
    gts = [{"video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 30)]},
           {"video_id": 1, "category_id": 1, "masks": [span(H, W, 30, 60)]}]
    preds = [{"video_id": 1, "category_id": 1, "score": 0.9, "masks": [span(H, W, 0, 60)]},
             {"video_id": 1, "category_id": 1, "score": 0.8, "masks": [span(H, W, 0, 30)]}]
    out = run(make_gt({1: (1, H, W)}, gts), preds)
    # t = 0.5: two TPs (AP_t 1); t > 0.5: FP then TP, recall 0.5 at precision 0.5.
    assert out["AP"] == pytest.approx((1 + 9 * 51 * 0.5 / 101) / 10, abs=1e-12)


def test_score_ties_keep_file_order_and_video_order():
    H, W = 6, 6
    g = [{"video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 10)]}]
    tp = {"video_id": 1, "category_id": 1, "score": 0.5, "masks": [span(H, W, 0, 10)]}
    fp = {"video_id": 1, "category_id": 1, "score": 0.5, "masks": [span(H, W, 20, 30)]}
    gt = make_gt({1: (1, H, W)}, g)
    assert run(gt, [fp, tp])["AR1"] == 0.0  # the first record of the tie is ranked first
    assert run(gt, [tp, fp])["AR1"] == 1.0
    # Across videos a tie goes to the smaller video id, whatever the file order.
    gt = make_gt({1: (1, H, W), 2: (1, H, W)}, g)
    fp2 = dict(fp, video_id=2)
    assert run(gt, [fp2, tp])["AP"] == pytest.approx(1.0, abs=1e-12)
    gt = make_gt({1: (1, H, W), 2: (1, H, W)}, [dict(g[0], video_id=2)])
    out = run(gt, [dict(tp, video_id=2), dict(fp, video_id=1)])
    assert out["AP"] == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("fp_area,ap_s,ap_m", [(128 ** 2, 0.5, 0.5), (128 ** 2 - 1, 0.5, 1.0),
                                               (128 ** 2 + 1, 1.0, 0.5)])
def test_area_exactly_128_squared_is_small_and_medium(fp_area, ap_s, ap_m):
    H, W = 130, 130
    # GT area comes from the `areas` field (exactly 128^2), not from its 100-pixel mask.
    gts = [{"video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 100), None, None],
            "areas": [16384.0, None, None]}]
    # The FP's area is the mean over non-null, non-zero frames: the empty frame does not count.
    fp_masks = [span(H, W, 500, 500 + fp_area), span(H, W, 0, 0), None]
    preds = [{"video_id": 1, "category_id": 1, "score": 0.9, "masks": fp_masks},
             {"video_id": 1, "category_id": 1, "score": 0.5,
              "masks": [span(H, W, 0, 100), None, None]}]
    out = run(make_gt({1: (3, H, W)}, gts), preds)
    assert out["AP"] == pytest.approx(0.5, abs=1e-12)  # FP ranked first: precision 0.5 everywhere
    assert out["AP_s"] == pytest.approx(ap_s, abs=1e-12)
    assert out["AP_m"] == pytest.approx(ap_m, abs=1e-12)
    assert out["AP_l"] == -1 and out["AR_l"] == -1


@pytest.mark.parametrize("tp_rank,ar10,ar100,ap", [(99, 0.0, 1.0, 0.01), (100, 0.0, 0.0, 0.0),
                                                   (5, 1.0, 1.0, 1 / 6)])
def test_more_than_100_predictions_are_cut(tp_rank, ar10, ar100, ap):
    H, W = 4, 50
    gts = [{"video_id": 1, "category_id": 1, "masks": [span(H, W, 0, 2)]}]
    fp = lambda i: span(H, W, 100 + i % 50, 101 + i % 50)  # noqa: E731
    preds = [{"video_id": 1, "category_id": 1, "score": 1.0 - 0.001 * i,
              "masks": [span(H, W, 0, 2) if i == tp_rank else fp(i)]} for i in range(105)]
    out = run(make_gt({1: (1, H, W)}, gts), preds[::-1])  # file order does not matter
    assert out["AR1"] == 0.0 and out["AR10"] == ar10 and out["AR100"] == ar100
    assert out["AP"] == pytest.approx(ap, abs=1e-12)  # precision 1/(rank+1) at recall 1


def test_empty_results_and_categories_without_gt():
    gt, _ = hand_case()
    out = run(gt, [])
    for k in ("AP", "AP50", "AP75", "AP_s", "AR1", "AR10", "AR100", "AR_s"):
        assert out[k] == 0.0
    assert out["AP_m"] == -1 and out["AR_l"] == -1
    assert out["per_category"] == {"cat1": 0.0, "cat2": 0.0, "cat3": -1.0, "cat99": -1.0}
    empty = make_gt({1: (1, 4, 4)}, [])
    out = run(empty, [{"video_id": 1, "category_id": 1, "score": 0.5, "masks": [span(4, 4, 0, 3)]}])
    assert all(out[k] == -1 for k in SUMMARY_KEYS)


def test_ovis_occlusion_split():
    H, W = 6, 10
    # a: top 2 of (0, .25, 0) -> .125 (light); b: top 2 -> .75 (heavy); c: top 2 of (.25, .25, .75,
    # 0) -> 0.5 (medium and heavy: both bounds are inclusive).
    occ = {"a": ["no_occlusion", "slight_occlusion", None, "no_occlusion"],
           "b": [2, 2, 1, 0],
           "c": ["slight_occlusion", "slight_occlusion", "severe_occlusion", "no_occlusion"]}
    assert occlusion_score(occ["a"]) == 0.125 and occlusion_score(occ["b"]) == 0.75
    assert occlusion_score(occ["c"]) == 0.5 and occlusion_score([None]) is None
    masks = {"a": span(H, W, 0, 10), "b": span(H, W, 20, 30), "c": span(H, W, 40, 50)}
    gts = [{"video_id": 1, "category_id": 1, "masks": [masks[k]] * 4, "occlusion": occ[k]}
           for k in "abc"]
    preds = [{"video_id": 1, "category_id": 1, "score": 0.95, "masks": [span(H, W, 55, 60)] * 4},
             {"video_id": 1, "category_id": 1, "score": 0.9, "masks": [masks["a"]] * 4},
             {"video_id": 1, "category_id": 1, "score": 0.8, "masks": [masks["c"]] * 4}]
    gt = make_gt({1: (4, H, W)}, gts)
    out = run(gt, preds)
    # all: FP, TP, TP of 3 GTs -> precision 2/3 up to recall 2/3 (67 recall points).
    assert out["AP"] == pytest.approx(67 * (2 / 3) / 101, abs=1e-12)
    # light = {a}: FP then TP (the match to c is ignored) -> 0.5; medium = {c} (0.5 is in both
    # medium and heavy) -> 0.5; heavy = {b, c}: FP, TP -> 0.5 up to recall 0.5.
    assert out["AP_occ_light"] == pytest.approx(0.5, abs=1e-12)
    assert out["AP_occ_medium"] == pytest.approx(0.5, abs=1e-12)
    assert out["AP_occ_heavy"] == pytest.approx(51 * 0.5 / 101, abs=1e-12)
    assert out["AR_occ_light"] == 1.0 and out["AR_occ_medium"] == 1.0 and out["AR_occ_heavy"] == 0.5
    assert_close(out, reference_evaluate(gt, make_results(preds)))
    bad = make_gt({1: (1, H, W)}, [dict(gts[0], masks=[masks["a"]], occlusion=["half"])])
    with pytest.raises(InputError, match="occlusion"):
        run(bad, [])


# ------------------------------------------------------------------------------- vs reference
def random_case(seed: int, big: bool = False):
    """Random small videos: blob/rectangle masks, null frames, crowd, score ties, 3 categories."""
    rng = np.random.default_rng(seed)
    H, W = (130, 260) if big else (7, 9)
    ids = rng.permutation(np.arange(1, 6))[:4].tolist()
    videos = {v: (int(rng.integers(1, 5)), H, W) for v in ids}

    def track(T):
        y, x = rng.integers(0, H, 2), rng.integers(0, W, 2)
        y0, y1, x0, x1 = min(y), max(y) + 1, min(x), max(x) + 1
        out = []
        for _ in range(T):
            if rng.random() < 0.2:
                out.append(None)
                continue
            m = np.zeros((H, W), dtype=bool)
            dy, dx = rng.integers(-1, 2, 2) * (8 if big else 1)
            m[max(0, y0 + dy):max(0, y1 + dy), max(0, x0 + dx):max(0, x1 + dx)] = True
            if rng.random() < 0.3:
                m &= rng.random((H, W)) < 0.8  # ragged blob
            out.append(m)
        return out

    gts, preds = [], []
    for v, (T, _, _) in videos.items():
        for _ in range(int(rng.integers(1, 4))):
            tr = {"video_id": v, "category_id": int(rng.integers(1, 4)), "masks": track(T),
                  "iscrowd": int(rng.random() < 0.15)}
            if rng.random() < 0.3:
                choices = [0, 16384, 40000, 65536, 70000]  # GT areas at the range boundaries
                tr["areas"] = [None if m is None else float(rng.choice(choices))
                               for m in tr["masks"]]
            gts.append(tr)
            for _ in range(int(rng.integers(0, 3))):  # near-copies of the GT
                ms = [None if m is None or rng.random() < 0.1 else m ^ (rng.random((H, W)) < 0.03)
                      for m in tr["masks"]]
                cat = tr["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 4))
                preds.append({"video_id": v, "category_id": cat, "score": round(rng.random(), 1),
                              "masks": ms})
        for _ in range(int(rng.integers(0, 5))):
            preds.append({"video_id": v, "category_id": int(rng.integers(1, 4)),
                          "score": round(rng.random(), 1), "masks": track(T)})
    rng.shuffle(preds)
    return make_gt(videos, gts), preds


@pytest.mark.parametrize("seed", range(8))
def test_random_cases_match_reference(seed):
    gt, preds = random_case(seed, big=seed >= 6)
    res = make_results(preds)
    g = load_ytvis(gt)
    recs = load_results(res, g)
    assert_close(evaluate(g, recs), reference_evaluate(gt, res))
    md = (1, 3, 5)
    assert_close(evaluate(g, recs, max_dets=md), reference_evaluate(gt, res, max_dets=md))


def test_random_case_with_occlusion_and_split_matches_reference():
    gt, preds = random_case(11)
    rng = np.random.default_rng(3)
    for a in gt["annotations"]:
        a["occlusion"] = [None if s is None else ["no_occlusion", "slight_occlusion",
                                                  "severe_occlusion"][rng.integers(0, 3)]
                          for s in a["segmentations"]]
        if all(x is None for x in a["occlusion"]):
            a["occlusion"][0] = "slight_occlusion"
    res = make_results(preds)
    vids = sorted(v["id"] for v in gt["videos"])
    out = run(gt, preds, long_video_ids=vids[:2])
    assert_close(out, reference_evaluate(gt, res))
    for part, ids in (("long", vids[:2]), ("short", vids[2:])):
        assert_close(out[part], reference_evaluate(gt, res, video_ids=set(ids)), keys=SUMMARY_KEYS)


# ------------------------------------------------------------------------------- building blocks
def test_pair_ious_exact_against_dense_and_pruning_is_safe():
    rng = np.random.default_rng(0)
    H, W, T = 5, 6, 4
    def dense():
        return [None if rng.random() < 0.25 else rng.random((H, W)) < 0.5 for _ in range(T)]

    d_dense, g_dense = [dense() for _ in range(6)], [dense() for _ in range(3)]
    enc = lambda tr: [None if m is None else encode(m) for m in tr]  # noqa: E731
    d, g = [enc(x) for x in d_dense], [enc(x) for x in g_dense]
    pu, pg = np.repeat(np.arange(6), 3), np.tile(np.arange(3), 6)
    want = np.array([_video_iou(d_dense[u], g_dense[j]) for u, j in zip(pu, pg)])
    da, ga = frame_areas(d, T), frame_areas(g, T)
    assert np.array_equal(pair_ious(d, g, da, ga, pu, pg, min_iou=0.0), want)
    pruned = pair_ious(d, g, da, ga, pu, pg, min_iou=0.3)
    assert np.array_equal(pruned[want >= 0.3], want[want >= 0.3])
    assert (pruned[want < 0.3] <= want[want < 0.3]).all()


def test_greedy_match_crowd_and_ignore_order():
    thr = np.array([0.5, 0.9])
    ious = np.array([[0.95, 0.6], [0.95, 0.0]])  # GT 0 is crowd: both detections may take it
    m, ig = greedy_match(ious, [True, False], [True, False], thr)
    # d0: the regular GT 1 (IoU 0.6) beats the crowd at t=0.5; at 0.9 only the crowd qualifies.
    assert m.tolist() == [[True, True], [True, True]]
    assert ig.tolist() == [[False, True], [True, True]]


@pytest.mark.parametrize("ignore,crowd", [(False, False), (True, False), (True, True)])
def test_greedy_match_single_gt_fast_path_agrees_with_loops(ignore, crowd):
    rng = np.random.default_rng(int(ignore) + 2 * int(crowd))
    ious = np.round(rng.random((12, 1)), 2)  # ties and values on the thresholds
    thr = np.linspace(0.5, 0.95, 10)
    fast = greedy_match(ious, [ignore], [crowd], thr)
    # A second GT that no detection reaches sends the same case through the general loops.
    loops = greedy_match(np.hstack([ious, np.zeros_like(ious)]), [ignore, False], [crowd, False],
                         thr)
    assert np.array_equal(fast[0], loops[0]) and np.array_equal(fast[1], loops[1])
    assert fast[0].any()


def test_evaluator_protocol_matches_evaluate():
    gt_dict, preds = hand_case()
    gt = load_ytvis(gt_dict)
    res = make_results(preds)
    ev = YTVISEvaluator(gt)
    ev.process(res[:3])
    ev.reset()
    for r in res:
        ev.process([r])
    assert ev.evaluate() == evaluate(gt, load_results(res, gt))
    sub = YTVISEvaluator(gt, only_processed_videos=True)
    sub.process([r for r in res if r["video_id"] == 1])
    assert sub.evaluate()["AP"] == pytest.approx(0.7, abs=1e-12)
    with pytest.raises(InputError, match="unknown video id 9"):
        ev.process([dict(res[0], video_id=9)])


def test_bad_results_raise_input_error():
    gt_dict, preds = hand_case()
    gt = load_ytvis(gt_dict)
    res = make_results(preds)
    with pytest.raises(InputError, match="unknown video id"):
        evaluate(gt, [dict(load_results(res, gt)[0], video_id=42)])
    with pytest.raises(InputError, match="score"):
        load_results([dict(res[0], score=float("nan"))], gt)
    wrong = dict(res[0], segmentations=[encode(np.zeros((3, 3), bool))] * 5)
    with pytest.raises(InputError, match="differs"):
        load_results([wrong], gt)
