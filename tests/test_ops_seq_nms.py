"""Sequence scoring, sequence NMS, category-aware soft-NMS and the full reduction."""
import math

import numpy as np
import pytest
import torch

from tubelet.ops import (ReduceConfig, category_aware_soft_nms, mask_nms, nms_from_iou,
                         reduce_sequences, sequence_iou, sequence_nms, sequence_scores)
from tubelet.structures import rle


# ------------------------------------------------------------------ slow references
def ref_nms(scores, iou, thr, stop):
    """Alg. 1 written as plain loops over a Python list of remaining items."""
    remaining = list(range(len(scores)))
    keep = []
    while remaining:
        best = remaining[0]
        for r in remaining:  # first maximum wins ties
            if scores[r] > scores[best]:
                best = r
        if stop is not None and keep and scores[best] < stop:
            break
        keep.append(best)
        remaining = [r for r in remaining if r != best and not iou[best][r] >= thr]
    return keep


def ref_soft_nms(scores, iou, sigma=0.5, method="gaussian", thr=0.5, min_score=1e-3, max_k=100):
    """Soft-NMS one class at a time, as in Bodla et al. (Alg. 1) with a score floor."""
    out = []
    n, c = len(scores), len(scores[0]) if len(scores) else 0
    for k in range(c):
        s = {i: float(scores[i][k]) for i in range(n)}
        picked = []
        while s and len(picked) < max_k:
            best = None
            for i in sorted(s):
                if best is None or s[i] > s[best]:
                    best = i
            if s[best] < min_score:
                break
            picked.append((best, k, s.pop(best)))
            for j in list(s):
                if s[j] < min_score:
                    continue
                o = iou[best][j]
                if method == "gaussian":
                    s[j] *= math.exp(-o * o / sigma)
                elif o >= thr:
                    s[j] *= 1 - o
        out += picked
    return out


def _rand_problem(rng, n, c):
    iou = rng.random((n, n))
    iou = (iou + iou.T) / 2
    np.fill_diagonal(iou, 1.0)
    return rng.random((n, c)) ** 2, iou


# ------------------------------------------------------------------ scoring
def test_sequence_scores_hand_numbers():
    p = np.zeros((2, 3, 3))
    p[0, 0] = [0.2, 0.5, 0.3]
    p[0, 1] = [0.9, 0.05, 0.05]  # empty frame: ignored
    p[0, 2] = [0.4, 0.1, 0.5]
    p[1] = 0.3
    ne = np.array([[True, False, True], [False, False, False]])
    cate, agn = sequence_scores(p, ne)
    np.testing.assert_allclose(cate, [[0.3, 0.3, 0.4], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(agn, [0.4, 0.0])
    cate_all, agn_all = sequence_scores(torch.from_numpy(p), torch.from_numpy(ne), "all")
    np.testing.assert_allclose(cate_all[0], [0.6 / 3, 0.6 / 3, 0.8 / 3])
    np.testing.assert_allclose(agn_all, [0.8 / 3, 0.0])
    cate0, agn0 = sequence_scores(np.zeros((0, 1, 3)), np.zeros((0, 1), bool))
    assert cate0.shape == (0, 3) and agn0.shape == (0,)
    with pytest.raises(ValueError):
        sequence_scores(p, ne[:, :2])


# ------------------------------------------------------------------ agnostic NMS
def test_sequence_nms_hand_numbers():
    s = np.array([0.9, 0.8, 0.7, 0.03, 0.02])
    iou = np.eye(5)
    iou[0, 1] = iou[1, 0] = 0.6  # 1 suppressed by 0
    iou[0, 2] = iou[2, 0] = 0.4
    iou[1, 2] = iou[2, 1] = 0.5  # would suppress 2, but 1 is gone first
    assert sequence_nms(s, iou).tolist() == [0, 2]  # stops at 0.03 < 0.05
    assert sequence_nms(s, iou, score_stop=None).tolist() == [0, 2, 3, 4]
    assert sequence_nms(s, iou, iou_threshold=0.4, score_stop=None).tolist() == [0, 3, 4]  # >= θ
    assert sequence_nms(np.array([0.01, 0.02]), np.eye(2)).tolist() == [1]  # first always kept
    assert sequence_nms(np.array([0.5, 0.5]), np.ones((2, 2))).tolist() == [0]  # tie: lower index
    assert sequence_nms(np.zeros(0), np.zeros((0, 0))).tolist() == []


def test_sequence_nms_from_masks_identical_sequences():
    m = np.zeros((3, 2, 4, 4), bool)
    m[0, :, :2, :2] = True
    m[1] = m[0]  # identical -> IoU 1 -> suppressed at any θ <= 1
    m[2, :, 2:, 2:] = True
    seqs = [[rle.encode(m[i, t]) for t in range(2)] for i in range(3)]
    assert sequence_nms(np.array([0.5, 0.6, 0.4]), masks=seqs, iou_threshold=0.9).tolist() == [1, 2]
    assert sequence_nms(np.array([0.5, 0.6, 0.4]), masks=m).tolist() == [1, 2]


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_reference(seed):
    rng = np.random.default_rng(seed)
    s, iou = _rand_problem(rng, 12, 1)
    s = s[:, 0]
    for thr in (0.3, 0.5, 0.9):
        for stop in (None, 0.05, 0.3):
            assert nms_from_iou(s, iou, thr, stop).tolist() == ref_nms(s, iou, thr, stop)


def test_mask_nms_frame_masks():
    m = np.zeros((3, 4, 4), bool)
    m[0, :2, :2] = True
    m[1, :2, :3] = True  # IoU with 0 = 4/6
    m[2, 2:, :] = True
    s = np.array([0.7, 0.9, 0.5])
    assert mask_nms(s, m, iou_threshold=0.5).tolist() == [1, 2]
    assert mask_nms(s, rle.encode_many(m), iou_threshold=0.7).tolist() == [1, 0, 2]


# ------------------------------------------------------------------ category-aware soft-NMS
def test_soft_nms_hand_numbers():
    s = np.array([[0.9, 0.1], [0.8, 0.5]])
    iou = np.array([[1.0, 0.6], [0.6, 1.0]])
    e = math.exp(-0.36 / 0.5)
    got = category_aware_soft_nms(s, iou)
    assert [(p.index, p.klass) for p in got] == [(0, 0), (1, 0), (1, 1), (0, 1)]
    np.testing.assert_allclose([p.score for p in got], [0.9, 0.8 * e, 0.5, 0.1 * e])
    lin = category_aware_soft_nms(s, iou, method="linear", iou_threshold=0.5)
    np.testing.assert_allclose([p.score for p in lin], [0.9, 0.8 * 0.4, 0.5, 0.1 * 0.4])
    lin_hi = category_aware_soft_nms(s, iou, method="linear", iou_threshold=0.7)
    np.testing.assert_allclose([p.score for p in lin_hi], [0.9, 0.8, 0.5, 0.1])  # not decayed


def test_soft_nms_floor_cap_ties_identical_and_empty():
    iou = np.ones((2, 2))  # identical sequences
    got = category_aware_soft_nms(np.array([[0.5], [0.5]]), iou)
    assert [(p.index, p.score) for p in got] == [(0, 0.5), (1, 0.5 * math.exp(-2.0))]  # tie: index 0
    got = category_aware_soft_nms(np.array([[0.5], [0.0005]]), np.eye(2))
    assert [p.index for p in got] == [0]  # below 0.001: never picked
    got = category_aware_soft_nms(np.array([[0.5], [0.4], [0.3]]), np.eye(3), max_per_class=2)
    assert [p.index for p in got] == [0, 1]
    # 0.002 decayed by exp(-1/0.5) falls below the floor -> dropped
    got = category_aware_soft_nms(np.array([[0.5], [0.002]]), np.ones((2, 2)))
    assert [p.index for p in got] == [0]
    assert category_aware_soft_nms(np.zeros((0, 3)), np.zeros((0, 0))) == []
    assert category_aware_soft_nms(np.zeros((2, 0)), np.eye(2)) == []


@pytest.mark.parametrize("seed", range(6))
def test_soft_nms_matches_reference(seed):
    rng = np.random.default_rng(seed)
    s, iou = _rand_problem(rng, 15, 4)
    s[3, 1] = 0.0005  # below the floor
    for kw in ({}, {"method": "linear", "iou_threshold": 0.3}, {"sigma": 0.2, "max_per_class": 4}):
        got = category_aware_soft_nms(s, iou, **kw)
        want = ref_soft_nms(s, iou, sigma=kw.get("sigma", 0.5), method=kw.get("method", "gaussian"),
                            thr=kw.get("iou_threshold", 0.5), max_k=kw.get("max_per_class", 100))
        assert [(p.index, p.klass) for p in got] == [(i, k) for i, k, _ in want]
        np.testing.assert_allclose([p.score for p in got], [x for _, _, x in want], rtol=1e-12)


# ------------------------------------------------------------------ full reduction
def test_reduce_hand_numbers():
    s = np.array([[0.9, 0.05], [0.85, 0.3], [0.1, 0.6]])
    iou = np.eye(3)
    iou[0, 1] = iou[1, 0] = 0.95
    iou[0, 2] = iou[2, 0] = 0.6
    iou[1, 2] = iou[2, 1] = 0.2
    e = math.exp(-0.36 / 0.5)
    got = reduce_sequences(s, iou)  # agnostic θ 0.9 drops 1; aware keeps 0 and 2 in both classes
    assert [(r.index, r.klass) for r in got] == [(0, 0), (2, 1), (2, 0), (0, 1)]
    np.testing.assert_allclose([r.score for r in got], [0.9, 0.6, 0.1 * e, 0.05 * e])
    plain = reduce_sequences(s, iou, cfg=ReduceConfig(aware=False))  # θ 0.5 drops 1 and 2
    assert [(r.index, r.klass, r.score) for r in plain] == [(0, 0, 0.9)]  # 0.05 is not > 0.05
    assert reduce_sequences(np.zeros((0, 2)), np.zeros((0, 0))) == []


@pytest.mark.parametrize("seed", range(4))
def test_reduce_matches_reference_composition(seed):
    rng = np.random.default_rng(seed)
    m = rng.random((10, 3, 6, 6)) < 0.4
    m[4] = m[2]
    m[7] = False
    seqs = [[rle.encode(m[i, t]) if m[i, t].any() else None for t in range(3)] for i in range(10)]
    s = rng.random((10, 3)) ** 3
    iou = sequence_iou(seqs)
    kept = ref_nms(s.max(1), iou, 0.9, 0.05)
    want = ref_soft_nms(s[kept], iou[np.ix_(kept, kept)])
    want = sorted([(kept[i], k, x) for i, k, x in want if x > 1e-3], key=lambda r: (-r[2], r[1], r[0]))
    got = reduce_sequences(s, masks=seqs)
    assert [(r.index, r.klass) for r in got] == [(i, k) for i, k, _ in want]
    np.testing.assert_allclose([r.score for r in got], [x for _, _, x in want], rtol=1e-12)
