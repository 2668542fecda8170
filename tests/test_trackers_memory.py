"""Memory-bank (contrastive) tracker: bi-softmax numbers, births, backdrops, deaths, output."""
import math

import numpy as np
import pytest

from tubelet.structures import FrameInstances
from tubelet.trackers import MemoryBankTracker, MemoryConfig, bi_softmax, memory_embedding

W = 40


def masks(*spans, height=2):
    m = np.zeros((len(spans), height, W), bool)
    for k, (x0, x1) in enumerate(spans):
        m[k, :, x0:x1] = True
    return m


def frame(spans, scores, embeds, labels=None, probs=None, boxes=None):
    n = len(spans)
    return FrameInstances(masks(*spans) if n else np.zeros((0, 2, W), bool), scores,
                          labels if labels is not None else [1] * n, class_probs=probs,
                          embeddings=np.asarray(embeds, float).reshape(n, -1) if n else
                          np.zeros((0, 2)), boxes=boxes)


def empty():
    return frame([], [], [])


# ------------------------------------------------------------------ formulas by hand
def test_bi_softmax_hand_numbers():
    e = math.e
    np.testing.assert_allclose(bi_softmax(np.array([[1.0, 0.0], [0.0, 1.0]])),
                               [[e / (1 + e), 1 / (1 + e)], [1 / (1 + e), e / (1 + e)]])
    np.testing.assert_allclose(bi_softmax(np.array([[-3.0]])), [[1.0]])  # 1 x 1 is always 1
    r = e ** 2 / (e ** 2 + 1)
    np.testing.assert_allclose(bi_softmax(np.array([[2.0, 0.0]])), [[(r + 1) / 2, (1 - r + 1) / 2]])
    assert bi_softmax(np.zeros((0, 3))).shape == (0, 3)


def test_memory_embedding_weights():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    s = np.array([0.5, 0.5, 1.0])
    w = np.array([0.5 + 1 / 3, 0.5 + 2 / 3, 1.0 + 1.0])  # score + k/L, newest k = L
    np.testing.assert_allclose(memory_embedding(e, s, 3), (w[:, None] * e).sum(0) / w.sum())
    w2 = np.array([0.5 + 2 / 3, 1.0 + 1.0])  # two entries: the newest two temporal weights
    np.testing.assert_allclose(memory_embedding(e[1:], s[1:], 3), (w2[:, None] * e[1:]).sum(0) / w2.sum())
    np.testing.assert_allclose(memory_embedding(e, s, 3, temporal=False), (s[:, None] * e).sum(0) / 2.0)


# ------------------------------------------------------------------ association
def test_association_follows_embeddings_not_positions():
    tr = MemoryBankTracker()
    tr.update(frame([(0, 5), (20, 25)], [0.9, 0.8], [[5, 0], [0, 5]]))
    # the objects swap places; the embeddings say who is who
    res = tr.update(frame([(0, 5), (20, 25)], [0.9, 0.8], [[0, 5], [5, 0]]))
    assert res.track_ids.tolist() == [1, 0] and not res.new.any()


def test_greedy_by_score_and_threshold_by_hand():
    tr = MemoryBankTracker()
    tr.update(frame([(0, 5), (20, 25)], [0.9, 0.8], [[1, 0], [0, 1]]))  # tracks m0=[1,0], m1=[0,1]
    # d1=[1,1] (score .9): f=[1,1]; d2=[5,0] (score .8): f=[5,0]
    # S[d1] = [(0.5 + e/(e+e^5))/2, (0.5 + e/(e+1))/2] = [0.259, 0.616] -> track 1
    # S[d2] = [0.988, 0.138] -> track 0
    res = tr.update(frame([(0, 5), (20, 25)], [0.9, 0.8], [[1, 1], [5, 0]]))
    assert res.track_ids.tolist() == [1, 0]
    # a detection whose best S <= 0.5 is not matched: d=[0,0] among [5,0] and [0,5]
    tr.reset()
    tr.update(frame([(0, 5), (20, 25)], [0.9, 0.8], [[1, 0], [0, 1]]))
    res = tr.update(frame([(0, 5), (20, 25), (30, 35)], [0.9, 0.8, 0.7],
                          [[5, 0], [0, 5], [0, 0]]))
    assert res.track_ids.tolist() == [0, 1, 2] and res.new.tolist() == [False, False, True]


def test_matched_track_is_not_reused_in_the_same_frame():
    tr = MemoryBankTracker()
    tr.update(frame([(0, 5)], [0.9], [[1, 0]]))
    # both detections look like the track; the higher score takes it, the other is born
    res = tr.update(frame([(0, 5), (20, 25)], [0.8, 0.9], [[1, 0], [1, 0]]))
    assert res.track_ids.tolist() == [1, 0] and res.new.tolist() == [True, False]


def test_births_and_backdrops():
    tr = MemoryBankTracker()
    # det1 (score .15) is unmatched, not born (<= 0.2), disjoint from det0 -> backdrop
    # det2 (score .12) overlaps det0 (IoU 0.25 >= 0.05) -> neither born nor backdrop
    res = tr.update(frame([(0, 10), (20, 25), (5, 10)], [0.9, 0.15, 0.12],
                          [[1, 0], [0, 1], [1, 1]]))
    assert res.track_ids.tolist() == [0, -1, -1]
    assert len(tr.backdrops[-1]) == 1 and np.allclose(tr.backdrops[-1][0], [0, 1])
    # next frame: d=[0,1]; columns [track 0, backdrop]: f = [0, 1]
    # S = [(0.269 + 1)/2, (0.731 + 1)/2] -> best column is the backdrop -> no match -> born
    res = tr.update(frame([(20, 25)], [0.9], [[0, 1]]))
    assert res.track_ids.tolist() == [1] and res.new.tolist() == [True]
    # without backdrops the same detection is the only candidate of the only track: S = 1
    tr = MemoryBankTracker(MemoryConfig(backdrop_frames=0))
    tr.update(frame([(0, 10), (20, 25)], [0.9, 0.15], [[1, 0], [0, 1]]))
    assert tr.update(frame([(20, 25)], [0.9], [[0, 1]])).track_ids.tolist() == [0]


def test_backdrop_lives_one_frame():
    tr = MemoryBankTracker()
    tr.update(frame([(0, 10), (20, 25)], [0.9, 0.15], [[1, 0], [0, 1]]))
    tr.update(empty())  # the backdrop leaves the bank
    assert tr.update(frame([(20, 25)], [0.9], [[0, 1]])).track_ids.tolist() == [0]


@pytest.mark.parametrize("gap,same", [(9, True), (10, False)])
def test_death_after_ten_missed_frames(gap, same):
    tr = MemoryBankTracker()
    for _ in range(3):  # 3 valid frames: safe from the short-track rule
        tr.update(frame([(0, 5)], [0.9], [[1, 0]]))
    for _ in range(gap):
        tr.update(empty())
    res = tr.update(frame([(0, 5)], [0.9], [[1, 0]]))
    assert res.track_ids.tolist() == ([0] if same else [1])
    assert len(tr.live_tracks()) == 1
    v = tr.finalize()  # the closed track is still output
    assert sorted(set(v.track_ids.tolist())) == ([0] if same else [0, 1])


@pytest.mark.parametrize("length,valid,kept", [(9, 1, True), (10, 1, False), (10, 2, False),
                                              (10, 3, True)])
def test_short_track_deletion(length, valid, kept):
    tr = MemoryBankTracker()
    for t in range(length):
        tr.update(frame([(0, 5)], [0.9], [[1, 0]]) if t < valid else empty())
    # frames 0..8: no deletion yet; at t = 9 (> 8) the last two entries are empty
    assert (len(tr.finalize()) > 0) == kept


def test_short_track_born_late_is_deleted_two_frames_later():
    tr = MemoryBankTracker()
    for t in range(12):
        tr.update(frame([(0, 5)], [0.9], [[1, 0]]) if t == 9 else empty())
        if t == 10:
            assert len(tr.tracks) == 1  # only entry t = 10 is empty
    assert len(tr.tracks) == 0


def test_video_output_per_class_records():
    tr = MemoryBankTracker(category_ids=[3, 7, 9])
    tr.update(frame([(0, 5)], [0.9], [[1, 0]], probs=[[0.9, 0.06, 0.04]]))
    tr.update(empty())
    tr.update(frame([(0, 5)], [0.7], [[1, 0]], probs=[[0.7, 0.02, 0.28]]))
    v = tr.finalize()  # mean over the 2 matched frames: [0.8, 0.04, 0.16]
    assert v.labels.tolist() == [3, 9] and v.track_ids.tolist() == [0, 0]
    np.testing.assert_allclose(v.scores, [0.8, 0.16])
    assert [m is not None for m in v.masks[0]] == [True, False, True] and v.length == 3
    res = v.to_results(5)
    assert res[0]["category_id"] == 3 and len(res[0]["segmentations"]) == 3


def test_prefilters_score_box_and_mask_nms():
    tr = MemoryBankTracker()
    # det1 overlaps det0 with mask IoU 8/10 >= 0.5 -> suppressed; det2 score 0.05 <= 0.1 -> out
    res = tr.update(frame([(0, 10), (2, 10), (20, 25)], [0.9, 0.8, 0.05],
                          [[1, 0], [0, 1], [1, 1]]))
    assert res.track_ids.tolist() == [0, -1, -1]
    tr.reset()  # none above 0.1: the top one is kept
    assert tr.update(frame([(0, 5), (20, 25)], [0.05, 0.08], [[1, 0], [0, 1]])
                     ).track_ids.tolist() == [-1, -1]  # kept, but 0.08 <= 0.2: not born
    tr.reset()
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10.2], [0, 0, 10, 10]]  # box IoU ~0.98 > 0.9
    res = tr.update(frame([(0, 5), (10, 15), (20, 25)], [0.9, 0.8, 0.7],
                          [[1, 0], [0, 1], [1, 1]], labels=[1, 1, 2], boxes=boxes))
    assert res.track_ids.tolist() == [0, -1, 1]  # class-aware: the label-2 box survives


def test_memory_is_bounded():
    tr = MemoryBankTracker()
    for t in range(40):
        tr.update(frame([(0, 5), (20, 25)], [0.9, 0.8], [[1, 0], [0, 1]]))
    assert len(tr.tracks) == 2 and all(len(t.bank) == 3 for t in tr.tracks)


def test_needs_embeddings():
    tr = MemoryBankTracker()
    with pytest.raises(ValueError, match="embeddings"):
        tr.update(FrameInstances(masks(((0, 5))), [0.9], [1]))
