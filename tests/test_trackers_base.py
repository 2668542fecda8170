"""Shared tracker pieces: the update prologue, capabilities (``requires`` / ``check_tracker``)
and the class-score accumulation used by the memory and IAI trackers."""
from dataclasses import dataclass

import numpy as np
import pytest

from tubelet.structures import FrameInstances
from tubelet.trackers import (ClassScoreSum, FrameResult, GreedyTracker, IAIAssigner,
                              MemoryBankTracker, NaiveTracker, Tracker, build_tracker,
                              check_tracker, detection_class_scores, list_trackers)

W = 12


def masks(n):
    """n disjoint 3-px-wide column masks ``[n, 2, W]``."""
    m = np.zeros((n, 2, W), bool)
    for k in range(n):
        m[k, :, 3 * k:3 * k + 3] = True
    return m


# ------------------------------------------------------------------ capabilities
def test_requires_per_tracker():
    assert GreedyTracker.requires == frozenset()
    assert NaiveTracker.requires == frozenset()
    assert MemoryBankTracker.requires == frozenset({"embeddings"})
    assert IAIAssigner.requires == frozenset({"id_probs"})


def required(name, t):
    """The fields ``name`` requires, for frame t of a two-object video."""
    if name == "memory":
        return {"embeddings": [[1.0, 0.0], [0.0, 1.0]]}
    if name == "iai":  # both "new" at t = 0 (IDs 0, 1), then each object its own ID
        return {"id_probs": [[0.0, 0.0, 1.0]] * 2 if t == 0 else [[1.0, 0, 0], [0, 1.0, 0]]}
    return {}


@pytest.mark.parametrize("name", ["greedy", "iai", "memory", "naive"])
def test_required_fields_are_enough(name):
    # only masks / scores / labels plus what `requires` names: no class_probs, no boxes -> the
    # optional inputs have fallbacks (labels vote their confidence)
    tr = build_tracker(name)
    for t in range(5):
        res = tr.update(FrameInstances(masks(2), [0.9, 0.8], [1, 2], **required(name, t)))
        assert res.track_ids.tolist() == [0, 1]
    v = tr.finalize()
    assert sorted(zip(v.track_ids.tolist(), v.labels.tolist())) == [(0, 1), (1, 2)]


@pytest.mark.parametrize("name,field", [("memory", "embeddings"), ("iai", "id_probs")])
def test_missing_required_field_is_an_error_but_empty_frames_need_none(name, field):
    tr = build_tracker(name)
    res = tr.update(FrameInstances.empty(2, W))  # N = 0: nothing to read
    assert res.frame_index == 0 and tr.frame_index == 1
    with pytest.raises(ValueError, match=f"FrameInstances.{field}"):
        tr.update(FrameInstances(masks(1), [0.9], [1]))


def test_check_tracker():
    check_tracker("greedy", set())
    check_tracker("naive", {"class_probs"})
    check_tracker("memory", {"embeddings", "class_probs", "boxes"})
    check_tracker("iai", {"id_probs"})
    with pytest.raises(ValueError,
                       match=r"unknown tracker 'sort'; known: \['greedy', 'iai', 'memory', 'naive', 'none'\]"):
        check_tracker("sort", {"embeddings"})
    with pytest.raises(ValueError, match=r"needs FrameInstances field\(s\) \['embeddings'\]") as e:
        check_tracker("memory", {"class_probs"})
    assert "can feed: ['greedy', 'naive', 'none']" in str(e.value)
    with pytest.raises(ValueError, match=r"\['id_probs'\]") as e:
        check_tracker("iai", {"embeddings", "class_probs"})
    assert "can feed: ['greedy', 'memory', 'naive', 'none']" in str(e.value)
    assert list_trackers() == ["greedy", "iai", "memory", "naive", "none"]


# ------------------------------------------------------------------ the update prologue
@dataclass
class _EchoConfig:
    pass


class _Echo(Tracker):
    """Unregistered test double: detection k of every frame is track k; counts its calls."""
    requires = frozenset({"boxes"})

    def reset(self):
        super().reset()
        self.calls = []

    def _associate(self, frame, res):
        self.calls.append((res.frame_index, len(frame)))
        res.track_ids[:] = np.arange(len(frame))

    def finalize(self):
        return self._empty_video()


def test_update_prologue():
    with pytest.raises(TypeError, match="not registered"):
        _Echo()
    tr = _Echo(_EchoConfig())
    boxes = [[0, 0, 3, 2], [3, 0, 6, 2]]
    res = tr.update(FrameInstances(masks(2), [0.9, 0.1], [1, 1], boxes=boxes))
    assert isinstance(res, FrameResult) and res.track_ids.tolist() == [0, 1]
    assert res.new.tolist() == [False, False]  # the base hands over an all-dropped result
    tr.update(FrameInstances.empty(2, W))  # an empty frame still reaches _associate
    assert tr.calls == [(0, 2), (1, 0)] and tr.frame_index == 2
    with pytest.raises(ValueError, match="frame 2 is 3x12, earlier frames 2x12"):
        tr.update(FrameInstances.empty(3, W))
    with pytest.raises(ValueError, match="FrameInstances.boxes"):
        tr.update(FrameInstances(masks(1), [0.9], [1]))
    assert tr.frame_index == 2  # a rejected frame is not counted
    with pytest.raises(TypeError, match="needs a GreedyConfig"):
        GreedyTracker(_EchoConfig())


# ------------------------------------------------------------------ class-score accumulation
def test_class_score_sum_rows():
    s = ClassScoreSum()
    assert s.mean(3) == {}  # never added
    f = FrameInstances(masks(2), [0.9, 0.5], [1, 2], class_probs=[[0.2, 0.8], [0.4, 0.6]])
    s.add(f, 0)
    s.add(f, 1)
    # [0.2 + 0.4, 0.8 + 0.6] = [0.6, 1.4]; / 2 -> [0.3, 0.7]
    np.testing.assert_allclose(s.mean(2), [0.3, 0.7])
    np.testing.assert_allclose(detection_class_scores(f, 1), [0.4, 0.6])
    with pytest.raises(ValueError, match="both"):
        s.add(FrameInstances(masks(1), [0.9], [1]), 0)


def test_class_score_sum_labels_only():
    s = ClassScoreSum()
    f = FrameInstances(masks(3), [0.9, 0.4, 0.5], [5, 7, 5])
    assert detection_class_scores(f, 1) == {7: 0.4}
    for i in range(3):
        s.add(f, i)
    # category 5: 0.9 + 0.5 = 1.4, category 7: 0.4; / 4 -> 0.35, 0.1
    got = s.mean(4)
    assert sorted(got) == [5, 7]
    assert got[5] == pytest.approx(0.35) and got[7] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="both"):
        s.add(FrameInstances(masks(1), [0.9], [1], class_probs=[[1.0, 0.0]]), 0)
