"""The evaluator (``tubelet.eval``) against the slow reference evaluator of
``tests/eval_cases.py`` on random cases, and its building blocks against dense loops."""
from __future__ import annotations

import numpy as np
import pytest

from tests.eval_cases import (assert_close, hand_case, make_results, random_case, ref_video_iou,
                              reference_evaluate, run)
from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.errors import InputError
from tubelet.eval import SUMMARY_KEYS, YTVISEvaluator, evaluate
from tubelet.eval.matching import greedy_match
from tubelet.eval.video_iou import frame_areas, pair_ious
from tubelet.structures.rle import encode


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
    want = np.array([ref_video_iou(d_dense[u], g_dense[j]) for u, j in zip(pu, pg)])
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
