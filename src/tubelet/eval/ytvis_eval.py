"""The YouTube-VIS / OVIS evaluator: exact official numbers, computed fast.

    from tubelet.data.ytvis import load_ytvis, load_results
    from tubelet.eval import evaluate
    gt = load_ytvis("valid.json")
    stats = evaluate(gt, load_results("results.json", gt))
    print(stats["AP"], stats["per_category"])

Matches the official ``ytvoseval`` / ``oviseval`` number for number (see ``shared/EVAL_NOTES.md``
and the modules :mod:`.match_table`, :mod:`.video_iou`, :mod:`.matching`, :mod:`.accumulate`).
Deliberate differences, all on inputs where the official code crashes or is silently wrong:

- a mask whose size differs from its video: ``load_results`` raises (official: 0 intersection);
- a GT annotation with id 0: a match to it counts as a match (official: as a false positive);
- an OVIS track without any occlusion label belongs to no occlusion range (official: crash).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from tubelet.data.ytvis import ResultRecords, YTVISDataset, load_ytvis, validate_results
from tubelet.errors import InputError
from tubelet.eval.accumulate import accumulate, per_category_ap, pr_curves, summarize
from tubelet.eval.match_table import MatchTable, match_all
from tubelet.eval.params import EvalParams

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
            is_int = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            if not is_int or int(v) not in gt.videos:
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
        self._records = ResultRecords()
        self._videos: set[int] = set()

    def process(self, records: Iterable[dict], video_ids: Iterable[int] = ()) -> None:
        """Add result records (``{video_id, category_id, score, segmentations}``)."""
        recs = validate_results(list(records), self.gt, "<process>")
        self._records += recs
        self._records.mask_areas.update(recs.mask_areas)
        self._videos.update(r["video_id"] for r in recs)
        for v in video_ids:
            if v not in self.gt.videos:
                raise InputError(f"unknown video id {v}", None, "<process>", "video_ids")
            self._videos.add(v)

    def evaluate(self) -> dict:
        gt = self.gt
        if self.only_processed_videos:
            gt = gt.subset(self._videos)
        long_ids = self.long_video_ids
        if long_ids is not None and self.only_processed_videos:
            long_ids = [v for v in long_ids if v in self._videos]
        return evaluate(gt, self._records, long_ids, self.max_dets)
