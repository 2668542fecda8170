"""IAI identity assigner, the naive baseline, and the tracker registry."""
import itertools

import numpy as np
import pytest

from tubelet.structures import FrameInstances
from tubelet.trackers import (GreedyConfig, GreedyTracker, IAIAssigner, IAIConfig, NaiveConfig, NaiveTracker,
                              assign_ids, build_tracker, list_trackers, register_tracker)

W = 30


def masks(n, height=2):
    """n disjoint 3-px-wide column masks."""
    m = np.zeros((n, height, W), bool)
    for k in range(n):
        m[k, :, 3 * k:3 * k + 3] = True
    return m


def iai_frame(id_probs, probs=None, scores=None):
    n = len(id_probs)
    return FrameInstances(masks(n), scores if scores is not None else [0.9] * n, [1] * n,
                          class_probs=probs, id_probs=np.asarray(id_probs, float).reshape(n, -1))


# ------------------------------------------------------------------ Hungarian assignment
def ref_assign(p, s):
    """Brute force: best total probability over all injective maps of detections to columns
    [0..K-2] + N copies of 'new' (ties: first in itertools order, as the LP may pick any)."""
    n, k = p.shape
    cols = list(range(k - 1)) + ["new"] * n
    best, best_val = None, -1.0
    for perm in itertools.permutations(range(len(cols)), n):
        val = sum(p[i, cols[c]] if cols[c] != "new" else p[i, k - 1] for i, c in enumerate(perm))
        if val > best_val + 1e-12:
            best, best_val = perm, val
    ids = [cols[c] if cols[c] != "new" and cols[c] < s else -1 for c in best]
    return ids, best_val


def test_assign_ids_hand_numbers():
    p = np.array([[0.8, 0.1, 0.05, 0.05],
                  [0.7, 0.2, 0.05, 0.05],  # loses ID 0 to det 0 (0.8 + 0.2 > 0.1 + 0.7)
                  [0.1, 0.1, 0.6, 0.2]])  # best slot 2 is not handed out yet (S = 2) -> new
    ids, new = assign_ids(p, num_assigned=2)
    assert ids.tolist() == [0, 1, -1] and new.tolist() == [False, False, True]
    # replicated "new" column: three newcomers in one frame
    ids, new = assign_ids(np.array([[0.05, 0.05, 0.9]] * 3), num_assigned=2)
    assert ids.tolist() == [-1, -1, -1] and new.all()
    ids, new = assign_ids(np.zeros((0, 4)), 0)
    assert ids.shape == (0,) and new.shape == (0,)


@pytest.mark.parametrize("seed", range(6))
def test_assign_ids_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 4)), int(rng.integers(2, 5))
    p = rng.random((n, k))
    s = int(rng.integers(0, k))
    ids, new = assign_ids(p, s)
    want_ids, want_val = ref_assign(p, s)
    assert ids.tolist() == want_ids  # random floats: the optimum is unique
    assert (ids == -1).tolist() == new.tolist()


def test_id_counter_stops_at_k_minus_2():
    tr = IAIAssigner()  # K from id_probs: 3 -> IDs 0 and 1 only
    res = tr.update(iai_frame([[0, 0, 1.0]] * 3))
    assert res.track_ids.tolist() == [0, 1, -1] and res.new.tolist() == [True, True, False]
    res = tr.update(iai_frame([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0, 0, 1.0]]))
    assert res.track_ids.tolist() == [0, 1, -1]  # the newcomer is discarded
    with pytest.raises(ValueError, match="K = 3"):
        tr.update(iai_frame([[0.5, 0.2, 0.2, 0.1]]))


def test_newcomer_gate_drops_weak_newcomers_only():
    # detections 0 and 2 are new; det 1 holds ID 0 from frame 1 and stays although it is weak
    probs = [[0.5, 0.1], [0.25, 0.05], [0.29, 0.2]]
    tr = IAIAssigner(IAIConfig(new_thr=0.3))
    res = tr.update(iai_frame([[0, 0, 1.0], [0, 0, 1.0]], probs=[[0.31, 0.0], [0.2, 0.29]]))
    assert res.track_ids.tolist() == [0, -1] and res.new.tolist() == [True, False]
    res = tr.update(iai_frame([[0, 0, 1.0], [0.9, 0, 0.1], [0, 0, 1.0]], probs=probs))
    # det 0: new, 0.5 >= 0.3 -> ID 1; det 1: ID 0 (no gate on known IDs); det 2: 0.29 < 0.3
    assert res.track_ids.tolist() == [1, 0, -1] and res.new.tolist() == [True, False, False]
    paper = IAIAssigner(IAIConfig())  # new_thr 0: every newcomer gets an ID
    res = paper.update(iai_frame([[0, 0, 1.0], [0, 0, 1.0]], probs=[[0.31, 0.0], [0.2, 0.29]]))
    assert res.track_ids.tolist() == [0, 1]
    # label-only frames (no class_probs): the gate reads each detection's score
    labels_only = IAIAssigner(IAIConfig(new_thr=0.3))
    res = labels_only.update(iai_frame([[0, 0, 1.0], [0, 0, 1.0]], scores=[0.29, 0.3]))
    assert res.track_ids.tolist() == [-1, 0]


def test_iai_video_output_average_over_all_frames():
    tr = IAIAssigner(IAIConfig(), category_ids=[4, 6])
    tr.update(iai_frame([[0, 0, 0, 1.0], [0, 0, 0, 1.0]], probs=[[0.8, 0.2], [0.1, 0.15]]))
    tr.update(iai_frame([[0.9, 0.05, 0, 0.05]], probs=[[0.8, 0.2]]))
    tr.update(FrameInstances.empty(2, W))
    tr.update(FrameInstances.empty(2, W))
    v = tr.finalize()
    # ID 0: (0.8 + 0.8) / 4 = 0.4 and (0.2 + 0.2) / 4 = 0.1; ID 1: 0.025, 0.0375 (< 0.05)
    assert v.track_ids.tolist() == [0, 0] and v.labels.tolist() == [4, 6]
    np.testing.assert_allclose(v.scores, [0.4, 0.1])
    assert [m is not None for m in v.masks[0]] == [True, True, False, False]
    tr2 = IAIAssigner(IAIConfig(top_k=1))
    tr2.update(iai_frame([[0, 1.0]], probs=[[0.8, 0.2]]))
    assert len(tr2.finalize()) == 1


def test_iai_top_10_pairs():
    tr = IAIAssigner(IAIConfig(num_ids=8))
    probs = np.full((6, 2), 0.3) + np.arange(12).reshape(6, 2) * 0.01  # 12 pairs, all > 0.05
    tr.update(iai_frame([[0] * 7 + [1.0]] * 6, probs=probs))
    v = tr.finalize()
    assert len(v) == 10
    np.testing.assert_allclose(v.scores, np.sort(probs.ravel())[::-1][:10])


# ------------------------------------------------------------------ naive baseline
def _naive_loose():
    # the original argmax rule with a 0.5 threshold and no filters (tests below derive by hand)
    return NaiveTracker(NaiveConfig(score_thr=0.0, iou_thr=0.5, min_valid_frames=0))


def test_naive_defaults_match_greedy_gates():
    g, n = GreedyConfig(), NaiveConfig()
    assert n.score_thr == g.score_thr and n.min_valid_frames == g.min_valid_frames
    assert n.iou_thr == pytest.approx(1 - g.gate_thr)


def test_naive_takes_best_free_track_in_score_order():
    tr = _naive_loose()
    m0 = np.zeros((1, 1, 10), bool)
    m0[0, 0, :6] = True
    tr.update(FrameInstances(m0, [0.9], [1]))
    m1 = np.zeros((2, 1, 10), bool)
    m1[0, 0, :5] = True  # IoU 5/6 with track 0
    m1[1, 0, 1:6] = True  # IoU 5/6 too, but higher score -> takes track 0 first
    res = tr.update(FrameInstances(m1, [0.5, 0.7], [1, 1]))
    assert res.track_ids.tolist() == [1, 0] and res.new.tolist() == [True, False]
    m2 = np.zeros((1, 1, 10), bool)
    m2[0, 0, 3:6] = True  # IoU 3/5 = 0.6 with track 0 ([1,6)), 2/6 with track 1 ([0,5))
    assert tr.update(FrameInstances(m2, [0.9], [2])).track_ids.tolist() == [0]
    v = tr.finalize()
    assert v.track_ids.tolist() == [0, 1] and v.labels.tolist() == [1, 1]
    np.testing.assert_allclose(v.scores, [(0.9 + 0.7 + 0.9) / 3, 0.5])


def test_naive_threshold_is_strict():
    tr = _naive_loose()
    m = np.zeros((1, 1, 4), bool)
    m[0, 0, :2] = True
    tr.update(FrameInstances(m, [0.9], [1]))
    m2 = np.zeros((1, 1, 4), bool)
    m2[0, 0, 1:3] = True  # IoU 1/3
    assert tr.update(FrameInstances(m2, [0.9], [1])).new.tolist() == [True]
    m3 = np.zeros((1, 1, 4), bool)
    m3[0, 0, 0:4] = True  # IoU 2/4 = 0.5 with both tracks ([0,2), [1,3)): not > 0.5
    assert tr.update(FrameInstances(m3, [0.9], [1])).new.tolist() == [True]


# ------------------------------------------------------------------ registry
def test_registry():
    assert list_trackers() == ["greedy", "iai", "memory", "naive", "none"]
    tr = build_tracker("greedy", gate_thr=0.5)
    assert isinstance(tr, GreedyTracker) and tr.cfg.gate_thr == 0.5 and tr.cfg.lonely_margin == 0.01
    assert build_tracker("greedy", GreedyConfig(class_weight=0.0)).cfg.class_weight == 0.0
    assert build_tracker("iai", category_ids=[5]).category_of(0) == 5
    with pytest.raises(ValueError, match=r"unknown tracker 'nope'.*'greedy', 'iai', 'memory'"):
        build_tracker("nope")
    with pytest.raises(ValueError, match="gamma"):
        build_tracker("greedy", gamma=0.1)
    with pytest.raises(TypeError):
        build_tracker("memory", GreedyConfig())
    with pytest.raises(ValueError, match="already registered"):
        register_tracker("naive", GreedyConfig)(NaiveTracker)


@pytest.mark.parametrize("name", ["greedy", "iai", "memory", "naive"])
def test_every_tracker_streams_a_video(name):
    tr = build_tracker(name)
    rng = np.random.default_rng(0)
    for t in range(6):
        f = FrameInstances(masks(2), [0.9, 0.8], [1, 2], class_probs=[[0.9, 0.1], [0.2, 0.8]],
                           embeddings=[[3, 0], [0, 3]] + rng.normal(0, 0.1, (2, 2)),
                           id_probs=[[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]] if t else [[0, 0, 1]] * 2)
        assert tr.update(f).track_ids.tolist() == [0, 1]
    v = tr.finalize()
    assert v.length == 6 and len(v) >= 2 and set(v.track_ids.tolist()) == {0, 1}
    assert all(all(m is not None for m in seq) for seq in v.masks)
    tr.reset()
    assert tr.finalize().length == 0
