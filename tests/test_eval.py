"""Tests of the YouTube-VIS / OVIS evaluator (``tubelet.eval``) on hand-derived cases.

Expected numbers come from hand derivation (the comments show the arithmetic); the comparisons
with the slow reference evaluator of ``tests/eval_cases.py`` are in ``test_eval_reference.py``.
"""
from __future__ import annotations

import pytest

from tests.eval_cases import (assert_close, hand_case, make_gt, make_results, reference_evaluate,
                              run, span)
from tubelet.errors import InputError
from tubelet.eval import SUMMARY_KEYS, occlusion_score


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
