"""Shared pieces of the evaluator tests (``test_eval*.py``): builders of ground truth and results
from dense masks, the hand-checkable case, random cases, and :func:`reference_evaluate`: a slow,
obviously-correct evaluator on dense masks, written as straight loops from the rules of
``shared/EVAL_NOTES.md``, sharing no code with ``tubelet.eval``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.eval import evaluate
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


def ref_video_iou(d: list, g: list) -> float:
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
                iou = ref_video_iou(d["masks"], g["masks"])
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
