"""propose-reduce inference rules on hand-made inputs: sequence scores, the four reduction modes
(records, thresholds, ordering), per-frame outputs. Numbers are derived by hand in the comments.

Three sequences over T = 2 frames of 1 x 4 pixels, C = 2 classes (dataset ids 7 and 9):
    A: frame 0 cols 0-1, frame 1 cols 0-1          class distribution [bg .1, .8, .1] both frames
    B: frame 0 cols 0-1, frame 1 cols 0-2          [.3, .6, .1] both frames
    C: frame 0 col 3,    frame 1 empty             [.5, .1, .4] in frame 0 (frame 1 ignored)
Sequence IoU: A-B = (2 + 2) / (2 + 3) = 0.8; C overlaps nothing.
"""
import math

import numpy as np
import pytest

from tubelet.methods.propose_reduce import (ProposeReduceConfig, SequenceProposals,
                                            frame_outputs, reduce_config, reduce_to_instances)
from tubelet.structures import decode, encode

CATS = np.array([7, 9])


def _rle(cols):
    m = np.zeros((1, 4), bool)
    m[0, list(cols)] = True
    return encode(m)


def _proposals() -> SequenceProposals:
    p = SequenceProposals(length=2, num_classes=2)
    first = p.add(3)
    assert first == 0 and len(p) == 3
    p.set_frame(0, 0, [_rle([0, 1]), _rle([0, 1]), _rle([3])],
                np.array([[.1, .8, .1], [.3, .6, .1], [.5, .1, .4]]), np.array([1, 1, 1], bool))
    # C is empty in frame 1: its (junk) distribution must not enter its score
    p.set_frame(0, 1, [_rle([0, 1]), _rle([0, 1, 2]), None],
                np.array([[.1, .8, .1], [.3, .6, .1], [0., 1., 0.]]), np.array([1, 1, 0], bool))
    return p


def _records(result):
    return [(int(i), int(lab), float(s)) for i, lab, s in
            zip(result.track_ids, result.labels, result.scores)]


def _check(result, want):
    got = _records(result)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], rtol=1e-12)


def test_sequence_scores_average_nonempty_frames_only():
    p = _proposals()
    p.add(1)  # D: never non-empty -> background 1
    np.testing.assert_allclose(p.class_scores(), [[.1, .8, .1], [.3, .6, .1], [.5, .1, .4],
                                                  [1., 0., 0.]], rtol=1e-12)
    np.testing.assert_array_equal(p.count, [2, 2, 1, 0])
    assert p.masks[3] == [None, None]


def test_reduce_config_of_each_mode():
    cfg = reduce_config(ProposeReduceConfig())  # default: agnostic 0.9 + aware, output 0.001
    assert cfg.aware and cfg.resolved_agnostic_iou() == 0.9 and cfg.resolved_output_thr() == 1e-3
    assert cfg.agnostic_score_stop == 0.05 and cfg.sigma == 0.5 and cfg.method == "gaussian"
    cfg = reduce_config(ProposeReduceConfig(reduction="agnostic"))
    assert not cfg.aware and cfg.resolved_agnostic_iou() == 0.5 and cfg.resolved_output_thr() == 0.05
    for mode in ("none", "aware"):
        cfg = reduce_config(ProposeReduceConfig(reduction=mode))
        assert cfg.resolved_agnostic_iou() == math.inf and cfg.agnostic_score_stop is None
        assert cfg.aware == (mode == "aware")
    with pytest.raises(ValueError, match="reduction"):
        reduce_config(ProposeReduceConfig(reduction="soft"))


def test_agnostic_05_alone():
    # agnostic scores A .8, B .6, C .4: A kept, B dropped (IoU .8 >= .5), C kept. Records: every
    # class of A and C with score > 0.05, by (-score, class, index); ties at .1: C-class0 first.
    r = reduce_to_instances(_proposals(), reduce_config(ProposeReduceConfig(reduction="agnostic")),
                            CATS, 1, 4)
    _check(r, [(0, 7, .8), (2, 9, .4), (2, 7, .1), (0, 9, .1)])
    np.testing.assert_allclose(r.class_probs, [[.8, .1], [.1, .4], [.1, .4], [.8, .1]])
    assert r.masks[0] is not None and r.masks[1][1] is None  # C's record: absent in frame 1


def test_agnostic_09_then_category_aware_soft_nms():
    # θ .9 keeps all three. Class 0 column [.8, .6, .1]: pick A; B *= exp(-.8^2/.5) = exp(-1.28);
    # C *= exp(0). Class 1 column [.1, .1, .4]: pick C (no overlap, nothing decays); A and B tie
    # at .1 -> A (lower index); then B .1 * exp(-1.28).
    d = math.exp(-1.28)
    r = reduce_to_instances(_proposals(), reduce_config(ProposeReduceConfig()), CATS, 1, 4)
    _check(r, [(0, 7, .8), (2, 9, .4), (1, 7, .6 * d), (2, 7, .1), (0, 9, .1), (1, 9, .1 * d)])


def test_aware_alone_and_a_tighter_agnostic_step():
    d = math.exp(-1.28)
    want_aware = [(0, 7, .8), (2, 9, .4), (1, 7, .6 * d), (2, 7, .1), (0, 9, .1), (1, 9, .1 * d)]
    r = reduce_to_instances(_proposals(), reduce_config(ProposeReduceConfig(reduction="aware")),
                            CATS, 1, 4)
    _check(r, want_aware)
    # agnostic θ .7 drops B (IoU .8) before the soft-NMS: A and C never overlap, nothing decays
    cfg = reduce_config(ProposeReduceConfig(agnostic_iou_thr=0.7))
    r = reduce_to_instances(_proposals(), cfg, CATS, 1, 4)
    _check(r, [(0, 7, .8), (2, 9, .4), (2, 7, .1), (0, 9, .1)])


def test_no_reduction_and_strict_output_threshold():
    r = reduce_to_instances(_proposals(), reduce_config(ProposeReduceConfig(reduction="none")),
                            CATS, 1, 4)
    _check(r, [(0, 7, .8), (1, 7, .6), (2, 9, .4), (2, 7, .1), (0, 9, .1), (1, 9, .1)])
    # "larger than" the output threshold: C's .4 is not > .4
    cfg = reduce_config(ProposeReduceConfig(reduction="none", output_thr=0.4))
    _check(reduce_to_instances(_proposals(), cfg, CATS, 1, 4), [(0, 7, .8), (1, 7, .6)])


def test_no_proposals_and_no_records_give_empty_valid_results():
    r = reduce_to_instances(SequenceProposals(3, 2), reduce_config(ProposeReduceConfig()),
                            CATS, 5, 6)
    assert len(r) == 0 and (r.height, r.width, r.length) == (5, 6, 3)
    cfg = reduce_config(ProposeReduceConfig(output_thr=0.9))
    assert len(reduce_to_instances(_proposals(), cfg, CATS, 1, 4)) == 0
    outs = list(frame_outputs(r))
    assert [o.index for o in outs] == [0, 1, 2] and all(len(o.masks) == 0 for o in outs)


def test_frame_outputs_hold_the_records_present_in_each_frame():
    r = reduce_to_instances(_proposals(), reduce_config(ProposeReduceConfig(reduction="agnostic")),
                            CATS, 1, 4)
    outs = list(frame_outputs(r))
    assert [o.index for o in outs] == [0, 1]
    f0, f1 = outs
    np.testing.assert_array_equal(f0.track_ids, [0, 2, 2, 0])
    np.testing.assert_array_equal(f0.labels, [7, 9, 7, 9])
    np.testing.assert_allclose(f0.scores, [.8, .4, .1, .1])
    assert [decode(m)[0].tolist() for m in f0.masks] == \
        [[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 0, 0]]
    # frame 1: C is empty, A's two records remain
    np.testing.assert_array_equal(f1.track_ids, [0, 0])
    np.testing.assert_array_equal(f1.labels, [7, 9])
    np.testing.assert_allclose(f1.scores, [.8, .1])
    assert f1.track_ids.dtype == np.int64 and f1.labels.dtype == np.int64


def test_proposals_remember_their_key_frame_and_select_by_it():
    # sequences 0-1 from key frame 0, sequence 2 from key frame 4 (the K = 1 set is key 0 only)
    p = SequenceProposals(length=2, num_classes=2)
    assert p.add(2, key=0) == 0 and p.add(1, key=4) == 2
    p.set_frame(0, 0, [_rle([0]), _rle([1])], np.array([[.1, .8, .1], [.3, .6, .1]]),
                np.array([1, 1], bool))
    p.set_frame(2, 1, [_rle([3])], np.array([[.5, .1, .4]]), np.array([1], bool))
    assert p.key_of == [0, 0, 4]
    only4 = p.from_keys([4])
    assert only4.key_of == [4] and len(only4) == 1
    assert only4.masks[0][0] is None and decode(only4.masks[0][1]).nonzero()[1].tolist() == [3]
    np.testing.assert_array_equal(only4.prob_sum, [[.5, .1, .4]])
    np.testing.assert_array_equal(only4.count, [1])
    only0 = p.from_keys([0, 7])  # a key that proposed nothing selects nothing
    assert only0.key_of == [0, 0] and only0.masks == p.masks[:2]
    np.testing.assert_array_equal(only0.class_scores(), p.class_scores()[:2])
    assert len(p.from_keys([])) == 0 and p.add(1) == 3 and p.key_of[-1] == -1
