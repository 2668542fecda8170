"""The "none" tracker (no association): every detection is its own one-frame track."""
import numpy as np
import pytest

from tubelet.structures import FrameInstances, decode
from tests.test_trackers_base import W, masks  # noqa: F401  (disjoint column masks)
from tubelet.trackers import PerFrameConfig, PerFrameTracker, build_tracker, list_trackers


def test_registered_and_needs_nothing():
    assert "none" in list_trackers()
    tr = build_tracker("none", score_thr=0.3)
    assert isinstance(tr, PerFrameTracker) and tr.cfg.score_thr == 0.3
    assert tr.requires == frozenset()


def test_every_detection_a_new_track_and_score_gate():
    tr = PerFrameTracker(PerFrameConfig(score_thr=0.5))
    r0 = tr.update(FrameInstances(masks(3), [0.9, 0.4, 0.5], [1, 2, 1]))
    # 0.4 < 0.5 dropped; 0.5 >= 0.5 kept (inclusive gate); ids in input order
    assert r0.track_ids.tolist() == [0, -1, 1] and r0.new.tolist() == [True, False, True]
    # the same objects again: no association, so fresh ids
    r1 = tr.update(FrameInstances(masks(3), [0.9, 0.8, 0.1], [1, 2, 1]))
    assert r1.track_ids.tolist() == [2, 3, -1] and r1.new.tolist() == [True, True, False]
    r2 = tr.update(FrameInstances.empty(2, W))
    assert len(r2.track_ids) == 0
    video = tr.finalize()  # labels only: one record per track, its label and confidence
    assert video.length == 3 and len(video) == 4
    by_id = {int(i): (float(s), int(c)) for i, s, c in zip(video.track_ids, video.scores,
                                                            video.labels)}
    assert by_id == {0: (0.9, 1), 1: (0.5, 1), 2: (0.9, 1), 3: (0.8, 2)}
    k = list(video.track_ids).index(3)  # track 3 = detection 1 of frame 1, only in frame 1
    assert video.masks[k][0] is None and video.masks[k][2] is None
    assert np.array_equal(decode(video.masks[k][1]).astype(bool), masks(3)[1])


def test_class_probs_give_one_record_per_class_above_output_thr():
    tr = PerFrameTracker(PerFrameConfig(score_thr=0.0, output_thr=0.05))
    probs = np.array([[0.7, 0.2, 0.05], [0.01, 0.6, 0.3]])
    tr.update(FrameInstances(masks(2), [0.7, 0.6], [1, 2], class_probs=probs))
    video = tr.finalize()
    recs = sorted(zip(video.scores.round(6).tolist(), video.labels.tolist(),
                      video.track_ids.tolist()), reverse=True)
    # 0.05 is not > 0.05; column c is category c + 1 by default
    assert recs == [(0.7, 1, 0), (0.6, 2, 1), (0.3, 3, 1), (0.2, 2, 0)]


def test_reset_restarts_ids():
    tr = build_tracker("none")
    tr.update(FrameInstances(masks(1), [0.9], [1]))
    tr.reset()
    assert tr.update(FrameInstances(masks(1), [0.9], [1])).track_ids.tolist() == [0]
    assert tr.finalize().length == 1


@pytest.mark.parametrize("n", [0, 2])
def test_empty_video_output(n):
    tr = PerFrameTracker(PerFrameConfig(score_thr=1.0))
    tr.update(FrameInstances(masks(n), [0.5] * n, [1] * n))
    assert len(tr.finalize()) == 0
