"""The YouTube-VIS / OVIS evaluator: exact official numbers, computed fast.

    from tubelet.data.ytvis import load_ytvis, load_results
    from tubelet.eval import evaluate
    gt = load_ytvis("valid.json")
    stats = evaluate(gt, load_results("results.json", gt))
    print(stats["AP"], stats["per_category"])

Matches the official ``ytvoseval`` / ``oviseval`` number for number (see ``shared/EVAL_NOTES.md``
and the modules :mod:`.video_iou`, :mod:`.matching`, :mod:`.accumulate`). Deliberate differences,
all on inputs where the official code crashes or is silently wrong:

- a mask whose size differs from its video: ``load_results`` raises (official: 0 intersection);
- a GT annotation with id 0: a match to it counts as a match (official: as a false positive);
- an OVIS track without any occlusion label belongs to no occlusion range (official: crash).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from tubelet.data.ytvis import YTVISDataset, load_ytvis, validate_results
from tubelet.errors import InputError
from tubelet.eval.accumulate import (MatchTable, accumulate, per_category_ap, pr_curves,
                                     summarize)
from tubelet.eval.matching import greedy_match
from tubelet.eval.params import AREA_RANGES, OCC_RANGES, EvalParams, occlusion_score
from tubelet.eval.video_iou import frame_areas, mean_track_area, pair_ious

SUMMARY_KEYS = ("AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l",
                "AR1", "AR10", "AR100", "AR_s", "AR_m", "AR_l")


@dataclass
class EvalResult:
    """Everything the evaluator computed (``evaluate`` returns ``stats`` only)."""
    stats: dict                # the dict documented in :func:`evaluate`
    precision: np.ndarray      # [T, R, K, C, M] (-1 where a category has no GT)
    recall: np.ndarray         # [T, K, C, M]
    table: MatchTable          # per-detection matching outcome
    params: EvalParams

    def pr_curves(self) -> dict[str, np.ndarray]:
        """Category-mean precision ``[R]`` at IoU 0.50, 0.75 and 0.50:0.95."""
        return pr_curves(self.precision, self.params)


def _settings(has_occlusion: bool) -> list[tuple[str, tuple[float, float], tuple[float, float] | None]]:
    """(name, area range, occlusion range or None) of each evaluation setting."""
    out = [(name, rng, None) for name, rng in AREA_RANGES.items()]
    if has_occlusion:
        out += [(f"occ_{name}", AREA_RANGES["all"], rng) for name, rng in OCC_RANGES.items()]
    return out


def _gt_track_area(areas: list[float | None]) -> float:
    """Official GT track area: numpy mean of the non-null, non-zero ``areas`` entries."""
    nz = [a for a in areas if a]
    return float(np.array(nz, dtype=np.float64).mean()) if nz else 0.0


def match_all(gt: YTVISDataset, results: list[dict], params: EvalParams) -> MatchTable:
    """Compute video IoUs and greedy matches of every (video, category) and setting."""
    settings = _settings(any(a.occlusion is not None for a in gt.annotations))
    C, T = len(settings), len(params.iou_thresholds)
    video_ids = sorted(gt.videos)
    vpos = {v: i for i, v in enumerate(video_ids)}
    category_ids = sorted(gt.categories)
    kpos = {c: i for i, c in enumerate(category_ids)}
    max_det = params.max_dets[-1]

    # ---- ground truth: category, video, ignore flag per setting
    gts = sorted(gt.annotations, key=lambda a: vpos[a.video_id])  # stable: file order per video
    g_area = np.array([_gt_track_area(a.areas) for a in gts], dtype=np.float64)
    g_occ = [occlusion_score(a.occlusion, gt.path, f"annotation id {a.id}") for a in gts]
    g_crowd = np.array([bool(a.iscrowd) for a in gts], dtype=bool)
    gt_ignored = np.zeros((C, len(gts)), dtype=bool)
    for c, (_, (lo, hi), occ) in enumerate(settings):
        out = (g_area < lo) | (g_area > hi)
        if occ is not None:
            out |= np.array([s is None or s < occ[0] or s > occ[1] for s in g_occ], dtype=bool)
        gt_ignored[c] = g_crowd | out
    g_index = {id(a): i for i, a in enumerate(gts)}

    # ---- results: group by (video, category) in file order, skip categories absent from the GT
    groups: dict[int, dict[int, list[dict]]] = {}
    for i, r in enumerate(results):
        vid = r["video_id"]
        if vid not in vpos:
            raise InputError(f"unknown video id {vid}", None, f"results[{i}]", "video_id")
        if r["category_id"] in kpos:
            groups.setdefault(vid, {}).setdefault(r["category_id"], []).append(r)

    dt_cat, dt_vid, dt_rank, dt_score, dt_area = [], [], [], [], []
    match_blocks = []  # (first dt index, matched [C, T, D], to_ignored [C, T, D])
    for vid in video_ids:
        by_cat = groups.get(vid, {})
        v_gts = gt.annotations_of(vid)
        if not by_cat:
            continue
        video = gt.videos[vid]
        # Each (video, category): stable sort by score, cut to the largest maxDet.
        kept: list[tuple[int, list[dict]]] = []
        for cat, recs in sorted(by_cat.items()):
            order = sorted(range(len(recs)), key=lambda i: -recs[i]["score"])[:max_det]
            kept.append((cat, [recs[i] for i in order]))
        # Records sharing their masks (one track reported under several categories) share one
        # track: its areas and intersections are computed once.
        track_of, tracks, n_rec = {}, [], []
        for _, recs in kept:
            for r in recs:
                segs = r["segmentations"]
                key = tuple([s and s["counts"] for s in segs])
                u = track_of.get(key)
                if u is None:
                    u = track_of[key] = len(tracks)
                    tracks.append(segs)
                n_rec.append(u)
        t_areas = frame_areas(tracks, video.length)  # [U, T]
        t_mean = mean_track_area(t_areas)            # [U]
        gt_cat_idx: dict[int, list[int]] = {}
        for j, a in enumerate(v_gts):
            gt_cat_idx.setdefault(a.category_id, []).append(j)
        g_areas = frame_areas([a.segmentations for a in v_gts], video.length)  # [G_v, T]
        # IoU of the (track, GT) pairs of the same category.
        pairs: dict[tuple[int, int], int] = {}
        pos = 0
        for cat, recs in kept:
            for _ in recs:
                for j in gt_cat_idx.get(cat, ()):
                    pairs.setdefault((n_rec[pos], j), len(pairs))
                pos += 1
        pu = np.array([p[0] for p in pairs], dtype=np.int64)
        pg = np.array([p[1] for p in pairs], dtype=np.int64)
        p_iou = pair_ious(tracks, [a.segmentations for a in v_gts], t_areas, g_areas, pu, pg,
                          min_iou=float(params.iou_thresholds.min()))
        pos = 0
        for cat, recs in kept:
            D = len(recs)
            first = len(dt_score)
            us = n_rec[pos:pos + D]
            pos += D
            dt_cat += [kpos[cat]] * D
            dt_vid += [vpos[vid]] * D
            dt_rank += range(D)
            dt_score += [r["score"] for r in recs]
            dt_area += [t_mean[u] for u in us]
            js = gt_cat_idx.get(cat, [])
            if not js:
                continue
            ious = np.array([[p_iou[pairs[(u, j)]] for j in js] for u in us])  # [D, G_c]
            if not (ious >= params.iou_thresholds.min()).any():
                continue
            gidx = [g_index[id(v_gts[j])] for j in js]
            crowd = g_crowd[gidx]
            matched = np.zeros((C, T, D), dtype=bool)
            to_ig = np.zeros((C, T, D), dtype=bool)
            cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
            for c in range(C):
                pattern = tuple(gt_ignored[c, gidx].tolist())
                if pattern not in cache:
                    cache[pattern] = greedy_match(ious, pattern, crowd, params.iou_thresholds)
                matched[c], to_ig[c] = cache[pattern]
            match_blocks.append((first, matched, to_ig))

    N = len(dt_score)
    score = np.array(dt_score, dtype=np.float64)
    if not np.isfinite(score).all():
        raise InputError("a result score is not a finite number", None, "results", "score")
    area = np.array(dt_area, dtype=np.float64)
    # Unmatched detections outside the setting's area range are ignored.
    out_of_range = np.stack([(area < lo) | (area > hi) for _, (lo, hi), _ in settings])  # [C, N]
    dt_matched = np.zeros((C, T, N), dtype=bool)
    dt_ignored = np.repeat(out_of_range[:, None, :], T, axis=1)
    for first, matched, to_ig in match_blocks:
        D = matched.shape[2]
        dt_matched[:, :, first:first + D] = matched
        dt_ignored[:, :, first:first + D] = to_ig | (~matched & out_of_range[:, None, first:first + D])
    return MatchTable(
        settings=[s[0] for s in settings], category_ids=category_ids, video_ids=video_ids,
        dt_category=np.array(dt_cat, dtype=np.int64), dt_video=np.array(dt_vid, dtype=np.int64),
        dt_rank=np.array(dt_rank, dtype=np.int64), dt_score=score,
        dt_matched=dt_matched, dt_ignored=dt_ignored,
        gt_category=np.array([kpos[a.category_id] for a in gts], dtype=np.int64),
        gt_video=np.array([vpos[a.video_id] for a in gts], dtype=np.int64),
        gt_ignored=gt_ignored)


def _category_names(gt: YTVISDataset, category_ids: list[int]) -> list[str]:
    names = [gt.categories[c] for c in category_ids]
    dup = {n for n in names if names.count(n) > 1}
    return [f"{n} ({c})" if n in dup else n for n, c in zip(names, category_ids)]


def evaluate_detailed(gt: YTVISDataset, results: list[dict],
                      long_video_ids: Iterable[int] | None = None,
                      max_dets: Iterable[int] = (1, 10, 100)) -> EvalResult:
    """:func:`evaluate`, also returning the precision/recall arrays and the match table."""
    params = EvalParams(max_dets=tuple(max_dets))
    table = match_all(gt, results, params)
    precision, recall = accumulate(table, params)
    stats = summarize(precision, recall, params, table.settings)
    stats["per_category"] = dict(zip(_category_names(gt, table.category_ids),
                                     per_category_ap(precision).tolist()))
    if long_video_ids is not None:
        long_ids = set()
        for v in long_video_ids:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) not in gt.videos:
                raise InputError(f"long video id {v!r} is not a video of the ground truth",
                                 gt.path or None, None, "long_video_ids")
            long_ids.add(int(v))
        is_long = np.array([v in long_ids for v in table.video_ids], dtype=bool)
        for name, mask in (("short", ~is_long), ("long", is_long)):
            stats[name] = summarize(*accumulate(table, params, mask), params, table.settings)
        ap_s, ap_l = stats["short"]["AP"], stats["long"]["AP"]
        stats["mAP_2022"] = (ap_s + ap_l) / 2 if ap_s >= 0 and ap_l >= 0 else -1.0
    return EvalResult(stats, precision, recall, table, params)


def evaluate(gt: YTVISDataset, results: list[dict], long_video_ids: Iterable[int] | None = None,
             max_dets: Iterable[int] = (1, 10, 100)) -> dict:
    """Official YouTube-VIS / OVIS video-mask AP and AR of ``results`` against ``gt``.

    Args:
        gt: the ground truth (:func:`tubelet.data.ytvis.load_ytvis`).
        results: records validated by :func:`tubelet.data.ytvis.load_results` (compressed RLE,
            None frames, sizes equal to the video's). Categories absent from the GT are ignored,
            as by the official evaluator.
        long_video_ids: YouTube-VIS 2022: ids of the long videos; adds the metric on each subset.
        max_dets: three per-(video, category) detection limits; AP uses the largest.
    Returns:
        ``{AP, AP50, AP75, AP_s, AP_m, AP_l, AR1, AR10, AR100, AR_s, AR_m, AR_l}`` (AR keys
        follow ``max_dets``) as floats, -1 where no category has a non-ignored GT;
        ``per_category``: ``{category name: AP}`` for every GT category, **-1 for a category
        without GT** (left out of the mean AP); with OVIS occlusion labels in the GT,
        ``AP_occ_light/medium/heavy`` and ``AR_occ_light/medium/heavy`` (GT filtered by
        occlusion score, area "all", maxDet 100); with ``long_video_ids``, ``short`` and
        ``long`` (the 12+ numbers on each subset) and ``mAP_2022 = (AP_short + AP_long) / 2``
        (-1 if either subset has no GT).
    Raises:
        InputError: a result for an unknown video, a non-finite score, an unknown long video
            id, an unknown occlusion label.
    """
    return evaluate_detailed(gt, results, long_video_ids, max_dets).stats


class YTVISEvaluator:
    """Evaluator protocol (detectron2 style) for use during training::

        ev = YTVISEvaluator(gt)
        ev.reset()
        for video in loader:
            ev.process(model_output.to_results(video_id))
        stats = ev.evaluate()   # the dict of :func:`evaluate`

    Records are validated as they arrive (masks converted to compressed RLE, sizes checked).
    ``only_processed_videos=True`` evaluates on the videos passed to :meth:`process` (including
    through ``video_ids`` for videos without predictions) instead of the whole GT, for quick
    validation on a subset.
    """

    def __init__(self, gt: YTVISDataset | str, long_video_ids: Iterable[int] | None = None,
                 max_dets: Iterable[int] = (1, 10, 100), only_processed_videos: bool = False):
        self.gt = gt if isinstance(gt, YTVISDataset) else load_ytvis(gt)
        self.long_video_ids = None if long_video_ids is None else list(long_video_ids)
        self.max_dets = tuple(max_dets)
        self.only_processed_videos = only_processed_videos
        self.reset()

    def reset(self) -> None:
        self._records: list[dict] = []
        self._videos: set[int] = set()

    def process(self, records: Iterable[dict], video_ids: Iterable[int] = ()) -> None:
        """Add result records (``{video_id, category_id, score, segmentations}``)."""
        recs = validate_results(list(records), self.gt, "<process>")
        self._records += recs
        self._videos.update(r["video_id"] for r in recs)
        for v in video_ids:
            if v not in self.gt.videos:
                raise InputError(f"unknown video id {v}", None, "<process>", "video_ids")
            self._videos.add(v)

    def evaluate(self) -> dict:
        gt = self.gt
        if self.only_processed_videos:
            gt = _subset(gt, self._videos)
        long_ids = self.long_video_ids
        if long_ids is not None and self.only_processed_videos:
            long_ids = [v for v in long_ids if v in self._videos]
        return evaluate(gt, self._records, long_ids, self.max_dets)


def _subset(gt: YTVISDataset, video_ids: set[int]) -> YTVISDataset:
    """The ground truth restricted to ``video_ids`` (all categories kept)."""
    return YTVISDataset({v: gt.videos[v] for v in sorted(video_ids)}, dict(gt.categories),
                        [a for a in gt.annotations if a.video_id in video_ids], gt.path, gt.info)


def occlusion_scores(gt: YTVISDataset) -> dict[int, float | None]:
    """OVIS occlusion score of each GT annotation id (None without labels)."""
    return {a.id: occlusion_score(a.occlusion, gt.path, f"annotation id {a.id}")
            for a in gt.annotations}


__all__ = ["evaluate", "evaluate_detailed", "EvalResult", "YTVISEvaluator", "SUMMARY_KEYS",
           "occlusion_scores"]
