"""Match every (video, category) of a results list against the ground truth, for every setting.

Shapes: C evaluation settings (area / occlusion ranges), T IoU thresholds, N kept detections,
G ground-truth tracks, U unique mask tracks of one video.

Steps (the official ``evaluate`` + ``evaluateImg``, see EVAL_NOTES):

1. results of categories absent from the GT are dropped; the rest are stably sorted by score
   within each (video, category) and cut to the largest maxDet -- one ``lexsort`` for all;
2. per video, records with identical masks share one track; per-frame areas give each
   detection's area (mean over non-null, non-zero frames) and bound the IoUs;
3. video IoUs of the same-category (track, GT) pairs that can reach the lowest threshold;
4. greedy matching of each (video, category) once per distinct GT-ignore pattern.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tubelet.data.ytvis import YTVISDataset
from tubelet.errors import InputError
from tubelet.eval.matching import greedy_match
from tubelet.eval.params import AREA_RANGES, OCC_RANGES, EvalParams, occlusion_score
from tubelet.eval.video_iou import frame_areas, mean_track_area, pair_ious

Setting = tuple[str, tuple[float, float], "tuple[float, float] | None"]


@dataclass
class MatchTable:
    """Outcome of matching every (video, category), for every evaluation setting."""
    settings: list[str]        # C setting names: all, small, medium, large[, occ_light, ...]
    category_ids: list[int]    # K GT category ids, sorted
    video_ids: list[int]       # V GT video ids, sorted
    dt_category: np.ndarray    # [N] int, index into category_ids
    dt_video: np.ndarray       # [N] int, index into video_ids
    dt_rank: np.ndarray        # [N] int, rank by score within its (video, category), 0 = best
    dt_score: np.ndarray       # [N] float64
    dt_matched: np.ndarray     # [C, T, N] bool, matched to a GT at IoU threshold t
    dt_ignored: np.ndarray     # [C, T, N] bool, matched to an ignored GT, or unmatched and
    #                            outside the setting's area range
    gt_category: np.ndarray    # [G] int, index into category_ids
    gt_video: np.ndarray       # [G] int, index into video_ids
    gt_ignored: np.ndarray     # [C, G] bool, crowd or out of the setting's range


def eval_settings(has_occlusion: bool) -> list[Setting]:
    """(name, area range, occlusion range or None) of each evaluation setting."""
    out: list[Setting] = [(name, rng, None) for name, rng in AREA_RANGES.items()]
    if has_occlusion:  # OVIS: GT filtered by occlusion score, area "all"
        out += [(f"occ_{name}", AREA_RANGES["all"], rng) for name, rng in OCC_RANGES.items()]
    return out


def gt_track_area(areas: list[float | None]) -> float:
    """Official GT track area: numpy mean of the non-null, non-zero ``areas`` entries, else 0."""
    nz = [a for a in areas if a]
    return float(np.array(nz, dtype=np.float64).mean()) if nz else 0.0


def shared_tracks(segs_of: list[list[dict | None]]) -> tuple[list[list[dict | None]], np.ndarray]:
    """Unique mask tracks among records and ``[n]`` the track index of each record.

    A method reporting one track under several categories writes the same masks several times;
    parsing them once saves most of the work. Records are bucketed by three of their frames'
    RLE strings (hashing all T strings costs about as much as the parsing it saves) and compared
    in full within a bucket.
    """
    buckets: dict[tuple, list[int]] = {}
    tracks: list[list[dict | None]] = []
    track_of: list[int] = []
    for segs in segs_of:
        T = len(segs)
        a, b, c = segs[0], segs[T // 2], segs[-1]
        key = (T, a and a["counts"], b and b["counts"], c and c["counts"])
        same = buckets.get(key)
        u = -1 if same is None else next((v for v in same if tracks[v] == segs), -1)
        if u < 0:
            u = len(tracks)
            buckets.setdefault(key, []).append(u)
            tracks.append(segs)
        track_of.append(u)
    return tracks, np.array(track_of, dtype=np.int64)


def _unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` of a 1-D int array, without its first-call import of ``numpy.ma``
    (20-30 ms of every ``tubelet eval`` on a busy machine)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in ``sorted_ids`` and whether each is present."""
    pos = np.searchsorted(sorted_ids, ids)
    found = np.zeros(len(ids), dtype=bool)
    inside = pos < len(sorted_ids)
    found[inside] = sorted_ids[pos[inside]] == ids[inside]
    return pos, found


@dataclass
class _GroundTruth:
    """GT tracks sorted by video (file order within a video). G tracks."""
    tracks: list            # [G] Annotation
    video: np.ndarray       # [G] int, index into the sorted video ids
    category: np.ndarray    # [G] int, index into the sorted category ids
    crowd: np.ndarray       # [G] bool
    ignored: np.ndarray     # [C, G] bool, crowd or outside the setting's area / occlusion range


def _ground_truth(gt: YTVISDataset, settings: list[Setting], video_ids: np.ndarray,
                  category_ids: np.ndarray) -> _GroundTruth:
    vpos = _lookup(video_ids, np.array([a.video_id for a in gt.annotations], dtype=np.int64))[0]
    order = np.argsort(vpos, kind="stable")
    tracks = [gt.annotations[i] for i in order]
    category = _lookup(category_ids, np.array([a.category_id for a in tracks], dtype=np.int64))[0]
    area = np.array([gt_track_area(a.areas) for a in tracks], dtype=np.float64)
    occ = [occlusion_score(a.occlusion, gt.path, f"annotation id {a.id}") for a in tracks]
    crowd = np.array([bool(a.iscrowd) for a in tracks], dtype=bool)
    ignored = np.zeros((len(settings), len(tracks)), dtype=bool)
    for c, (_, (lo, hi), occ_rng) in enumerate(settings):
        out = (area < lo) | (area > hi)
        if occ_rng is not None:
            lo_o, hi_o = occ_rng
            out |= np.array([s is None or s < lo_o or s > hi_o for s in occ], dtype=bool)
        ignored[c] = crowd | out
    return _GroundTruth(tracks, vpos[order], category, crowd, ignored)


def _rank_results(results: list[dict], video_ids: np.ndarray, category_ids: np.ndarray,
                  max_det: int) -> tuple[np.ndarray, ...]:
    """Kept detections: drop categories absent from the GT, stably sort each (video, category) by
    score, cut to ``max_det``. Returns ``[N]`` arrays: record index, rank, video index, category
    index, score -- ordered by (video, category, rank)."""
    r_vid = np.array([r["video_id"] for r in results], dtype=np.int64)
    r_cat = np.array([r["category_id"] for r in results], dtype=np.int64)
    r_score = np.array([r["score"] for r in results], dtype=np.float64)
    vp, known_video = _lookup(video_ids, r_vid)
    if not known_video.all():
        i = int(np.argmin(known_video))
        raise InputError(f"unknown video id {r_vid[i]}", None, f"results[{i}]", "video_id")
    if not np.isfinite(r_score).all():
        i = int(np.argmin(np.isfinite(r_score)))
        raise InputError(f"not a finite number ({r_score[i]})", None, f"results[{i}]", "score")
    kp, known_cat = _lookup(category_ids, r_cat)
    idx = np.flatnonzero(known_cat)
    order = idx[np.lexsort((idx, -r_score[idx], kp[idx], vp[idx]))]  # file order breaks ties
    group = vp[order] * len(category_ids) + kp[order]
    first = np.r_[0, np.flatnonzero(np.diff(group)) + 1] if len(order) else np.zeros(0, np.int64)
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    keep = rank < max_det
    order, rank = order[keep], rank[keep]
    return order, rank, vp[order], kp[order], r_score[order]


def match_all(gt: YTVISDataset, results: list[dict], params: EvalParams) -> MatchTable:
    """Video IoUs and greedy matches of every (video, category) and setting.

    Raises:
        InputError: a record of an unknown video, or a non-finite score.
    """
    settings = eval_settings(any(a.occlusion is not None for a in gt.annotations))
    C, T = len(settings), len(params.iou_thresholds)
    video_ids = np.array(sorted(gt.videos), dtype=np.int64)
    category_ids = np.array(sorted(gt.categories), dtype=np.int64)
    min_thr = float(params.iou_thresholds.min())
    g = _ground_truth(gt, settings, video_ids, category_ids)
    g_bounds = np.searchsorted(g.video, np.arange(len(video_ids) + 1))
    order, rank, dt_video, dt_category, dt_score = _rank_results(
        results, video_ids, category_ids, params.max_dets[-1])
    N = len(order)
    dt_known = getattr(results, "mask_areas", None)  # areas from the loaders' decode check
    gt_known = gt.mask_areas

    dt_area = np.zeros(N)
    dt_matched = np.zeros((C, T, N), dtype=bool)
    to_ignored = np.zeros((C, T, N), dtype=bool)
    d_bounds = np.searchsorted(dt_video, np.arange(len(video_ids) + 1))
    for v in np.flatnonzero(np.diff(d_bounds)):  # videos with detections
        s, e = int(d_bounds[v]), int(d_bounds[v + 1])
        length = gt.videos[int(video_ids[v])].length
        tracks, track_of = shared_tracks([results[i]["segmentations"] for i in order[s:e]])
        t_areas = frame_areas(tracks, length, dt_known)  # [U, T_v]
        dt_area[s:e] = mean_track_area(t_areas)[track_of]
        gs, ge = int(g_bounds[v]), int(g_bounds[v + 1])
        if gs == ge:
            continue
        g_segs = [a.segmentations for a in g.tracks[gs:ge]]
        g_cat, d_cat = g.category[gs:ge], dt_category[s:e]
        # IoUs of the same-category (track, GT) pairs: [U, G_v], 0 below the lowest threshold.
        pu = [_unique(track_of[d_cat == g_cat[j]]) for j in range(ge - gs)]
        pg = np.repeat(np.arange(ge - gs), [len(x) for x in pu])
        pu = np.concatenate(pu)
        ious_tg = np.zeros((len(tracks), ge - gs))
        ious_tg[pu, pg] = pair_ious(tracks, g_segs, t_areas,
                                    frame_areas(g_segs, length, gt_known), pu, pg,
                                    min_iou=min_thr)
        for k in _unique(g_cat):
            cs, ce = s + np.searchsorted(d_cat, [k, k + 1])
            js = np.flatnonzero(g_cat == k)
            ious = ious_tg[track_of[cs - s:ce - s]][:, js]  # [D, G_c], detections by rank
            if ce == cs or ious.max() < min_thr:
                continue
            done: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
            for c in range(C):  # settings differ only through the GT-ignore pattern
                pattern = tuple(g.ignored[c, gs + js].tolist())
                if pattern not in done:
                    done[pattern] = greedy_match(ious, pattern, g.crowd[gs + js],
                                                 params.iou_thresholds)
                dt_matched[c, :, cs:ce], to_ignored[c, :, cs:ce] = done[pattern]

    # Unmatched detections outside the setting's area range are ignored.
    out_of_range = np.stack([(dt_area < lo) | (dt_area > hi) for _, (lo, hi), _ in settings])
    dt_ignored = to_ignored | (~dt_matched & out_of_range[:, None, :])
    return MatchTable(
        settings=[s[0] for s in settings], category_ids=category_ids.tolist(),
        video_ids=video_ids.tolist(), dt_category=dt_category, dt_video=dt_video,
        dt_rank=rank, dt_score=dt_score, dt_matched=dt_matched, dt_ignored=dt_ignored,
        gt_category=g.category, gt_video=g.video, gt_ignored=g.ignored)
