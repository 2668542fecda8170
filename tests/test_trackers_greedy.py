"""YOLOv4+1 greedy tracker: gating, Best Friend, Lonely Best Friend, output filter."""
import numpy as np
import pytest

from tubelet.errors import InputError
from tubelet.structures import FrameInstances
from tubelet.trackers import GreedyConfig, GreedyTracker, greedy_associate, majority_label


def cols(width, *spans, height=2):
    """[N, H, W] masks, mask k covering columns spans[k] = (x0, x1) on every row."""
    m = np.zeros((len(spans), height, width), bool)
    for k, (x0, x1) in enumerate(spans):
        m[k, :, x0:x1] = True
    return m


def frame(masks, scores, labels):
    return FrameInstances(masks, scores, labels)


# ------------------------------------------------------------------ the association rule
def ref_associate(cost, gate_thr, margin, strict):
    """The paper's four steps, spelled out with loops (ties: the first row / column wins)."""
    n, m = len(cost), len(cost[0]) if len(cost) else 0
    out = []
    for i in range(n):
        if m == 0:
            out.append(-1)
            continue
        row = list(cost[i])
        j = row.index(min(row))
        a = row[j]
        if a >= gate_thr:
            out.append(-1)
            continue
        column = [cost[k][j] for k in range(n)]
        best_friend = column.index(min(column)) == i  # the column's first minimum is row i
        second_row = sorted(row)[1] if m > 1 else float("inf")
        second_col = sorted(column)[1] if n > 1 else float("inf")
        ok = (second_row - a > margin and second_col - a > margin) if strict else \
            (second_row - a >= margin and second_col - a >= margin)
        out.append(j if best_friend and ok else -2)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_greedy_associate_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(0, 6, size=2)
    # rounding creates ties; quarter steps make tied column minima common (seeds 7 and 10
    # have rows tied on a column minimum that LBF with γ = 0 and >= does not separate)
    cost = np.round(rng.random((n, m)), 2) if seed < 6 else np.round(rng.random((n, m)) * 4) / 4
    if n and m:
        cost[0, :] = 0.995  # a gated row
    for strict in (True, False):
        for margin in (0.01, 0.0):  # margin 0 with >= lets tied rows through LBF
            got = greedy_associate(cost, 0.99, margin, strict)
            assert got.tolist() == ref_associate(cost.tolist(), 0.99, margin, strict)
            matched = got[got >= 0]
            assert len(set(matched.tolist())) == len(matched)  # one detection per track


def test_greedy_associate_hand_cases():
    # row 0 wins column 0 clearly; row 1 also prefers column 0 -> not a best friend -> doubtful
    c = np.array([[0.1, 0.9], [0.3, 0.8]])
    assert greedy_associate(c).tolist() == [0, -2]
    # equal row costs -> lonely best friend fails -> doubtful
    assert greedy_associate(np.array([[0.4, 0.4]])).tolist() == [-2]
    # margin of exactly 0.5 - 0.25 = 0.25 vs γ = 0.25: strict (paper) fails, >= (code) passes
    c = np.array([[0.25, 0.5]])
    assert greedy_associate(c, margin=0.25).tolist() == [-2]
    assert greedy_associate(c, margin=0.25, strict=False).tolist() == [0]
    assert greedy_associate(np.zeros((0, 3))).tolist() == []
    assert greedy_associate(np.zeros((2, 0))).tolist() == [-1, -1]


def test_best_friend_is_one_to_one_on_ties():
    # Both rows: best column 0 (0.2 < 0.9), cost 0.2 < gate_thr 0.99. Column 0 = [0.2, 0.2]: its
    # argmin is row 0, so only row 0 is column 0's best friend. LBF with γ = 0 and >=:
    # row gap 0.9 - 0.2 = 0.7 >= 0, column gap 0.2 - 0.2 = 0 >= 0 -> passes for both rows, so
    # BF alone decides: row 0 -> track 0, row 1 -> doubtful (-2), never [0, 0].
    c = [[0.2, 0.9], [0.2, 0.9]]
    assert greedy_associate(np.array(c), 0.99, 0.0, strict=False).tolist() == [0, -2]
    # tie in the later rows: rows 1 and 2 share column 1's minimum 0.3 -> row 1 wins it;
    # row 0 takes column 0 (0.1, alone in its column); gaps for row 1: row 0.8 - 0.3,
    # column 0.3 - 0.3 = 0 >= 0 -> [0, 1, -2]
    c = [[0.1, 0.9], [0.8, 0.3], [0.9, 0.3]]
    assert greedy_associate(np.array(c), 0.99, 0.0, strict=False).tolist() == [0, 1, -2]
    # the strict paper test (0 > 0 fails) drops both tied rows, as before
    assert greedy_associate(np.array(c), 0.99, 0.0, strict=True).tolist() == [0, -2, -2]


# ------------------------------------------------------------------ tracker behaviour
CROSS = [((0, 8), (12, 20)), ((2, 10), (10, 18)), ((4, 12), (8, 16)), ((6, 14), (6, 14)),
         ((8, 16), (4, 12)), ((10, 18), (2, 10))]  # A moves right, B left, 2 px a frame


def _run_cross(class_weight):
    tr = GreedyTracker(GreedyConfig(class_weight=class_weight))
    out = [tr.update(frame(cols(20, *spans), [0.9, 0.8], [1, 2])).track_ids.tolist()
           for spans in CROSS]
    return out, tr


def test_crossing_objects_with_class_term_keep_identity():
    out, tr = _run_cross(class_weight=1.0)
    assert out == [[0, 1]] * 6
    v = tr.finalize()  # 6 valid frames each, mean 0.9 / 0.8 -> both kept
    assert v.track_ids.tolist() == [0, 1] and v.labels.tolist() == [1, 2]
    np.testing.assert_allclose(v.scores, [0.9, 0.8])


def test_crossing_objects_mask_iou_only_switch():
    # t3: both masks identical -> both rows [0.4, 0.4] -> LBF fails -> both doubtful.
    # t4: tracks still hold their t2 masks; A=[8,16) equals B's t2 mask -> cost 0 -> switch.
    out, _ = _run_cross(class_weight=0.0)
    assert out[:3] == [[0, 1]] * 3
    assert out[3] == [-1, -1]
    assert out[4] == [1, 0] and out[5] == [1, 0]


def test_doubtful_detection_between_two_equal_tracks_is_dropped():
    tr = GreedyTracker()
    tr.update(frame(cols(12, (0, 4), (8, 12)), [0.9, 0.9], [1, 1]))
    res = tr.update(frame(cols(12, (2, 10)), [0.95], [1]))  # IoU 2/10 with both tracks
    assert res.track_ids.tolist() == [-1] and not res.new.any()
    assert len(tr.tracks) == 2 and all(t.num_valid == 1 for t in tr.tracks)


def test_gating_at_tau():
    tr = GreedyTracker()
    tr.update(frame(cols(100, (0, 50), height=1), [0.9], [1]))
    # inter 1 px, union 100 px -> IoU 0.01 -> cost 0.99 >= τ -> new track
    res = tr.update(frame(cols(100, (49, 100), height=1), [0.9], [1]))
    assert res.track_ids.tolist() == [1] and res.new.tolist() == [True]
    tr.reset()
    tr.update(frame(cols(100, (0, 50), height=1), [0.9], [1]))
    # inter 2 px, union 99 px -> cost 0.9798 < τ -> continues track 0
    res = tr.update(frame(cols(100, (48, 99), height=1), [0.9], [1]))
    assert res.track_ids.tolist() == [0] and res.new.tolist() == [False]


def test_confidence_threshold_and_tracks_never_expire():
    tr = GreedyTracker()
    res = tr.update(frame(cols(10, (0, 5), (5, 10)), [0.6, 0.59], [1, 1]))
    assert res.track_ids.tolist() == [0, -1]  # >= 0.6 enters, 0.59 does not
    for _ in range(20):
        assert tr.update(FrameInstances.empty(2, 10)).track_ids.tolist() == []
    res = tr.update(frame(cols(10, (0, 5)), [0.9], [1]))
    assert res.track_ids.tolist() == [0]  # matched against the last valid mask, 21 frames old
    v = tr.finalize()
    assert v.length == 22 and len(v) == 0  # only 2 valid frames -> filtered out


@pytest.mark.parametrize("valid,scores,kept", [
    (4, [0.61, 0.65, 0.7, 0.75], True),
    (3, [0.9, 0.9, 0.9], False),  # needs MORE than 3 valid frames
    (4, [0.6, 0.6, 0.6, 0.6], False),  # mean 0.6 is not > 0.6
])
def test_output_filter_edges(valid, scores, kept):
    tr = GreedyTracker()
    for t in range(6):
        if t < valid:
            tr.update(frame(cols(10, (0, 5)), [scores[t]], [3]))
        else:
            tr.update(FrameInstances.empty(2, 10))
    v = tr.finalize()
    assert len(v) == int(kept)
    if kept:
        assert v.scores[0] == pytest.approx(np.mean(scores))
        assert [m is not None for m in v.masks[0]] == [t < valid for t in range(6)]


def test_majority_vote():
    tr = GreedyTracker(GreedyConfig(class_weight=0.0))
    for lab in [1, 2, 2, 1, 2]:
        tr.update(frame(cols(10, (0, 5)), [0.8], [lab]))
    assert tr.finalize().labels.tolist() == [2]
    assert majority_label([1, 2], [0.7, 0.9]) == 2  # tie -> larger summed score
    assert majority_label([5, 4], [0.8, 0.8]) == 4  # full tie -> smaller id
    assert majority_label([], []) == -1
    # counts 2:2; the authors' np.bincount([2, 1, 2, 1]).argmax() = 1 (first maximum)
    assert majority_label([2, 1, 2, 1], [0.9, 0.1, 0.9, 0.1], tie="smallest_id") == 1
    assert majority_label([2, 1, 2, 1], [0.9, 0.1, 0.9, 0.1], tie="score") == 2
    assert majority_label([2, 1, 2], [0.1, 0.9, 0.1], tie="smallest_id") == 2  # no tie: count
    with pytest.raises(ValueError, match="tie"):
        majority_label([1], [0.5], tie="largest")


@pytest.mark.parametrize("class_weight,vote_tie,label", [
    (0.0, "auto", 1),  # class_weight 0 = released code -> its bincount argmax: smallest id
    (0.5, "auto", 3),  # otherwise tubelet's rule: summed score 0.9 + 0.9 > 0.7 + 0.7
    (0.0, "score", 3),
    (0.5, "smallest_id", 1),
])
def test_vote_tie_rule(class_weight, vote_tie, label):
    # One object, same mask every frame, labels 3, 1, 3, 1. Cost per frame: 1 - IoU 1 = 0, plus
    # class_weight (<= 0.5 < τ) when the label flips -> always the single track 0 (one row and
    # one column: both LBF gaps are +inf). 4 valid frames > 3, mean 0.8 > 0.6 -> output;
    # the vote is tied 2:2 between categories 1 and 3.
    tr = GreedyTracker(GreedyConfig(class_weight=class_weight, vote_tie=vote_tie))
    for lab, sc in [(3, 0.9), (1, 0.7), (3, 0.9), (1, 0.7)]:
        assert tr.update(frame(cols(10, (0, 5)), [sc], [lab])).track_ids.tolist() == [0]
    v = tr.finalize()
    assert v.labels.tolist() == [label] and v.scores.tolist() == pytest.approx([0.8])


def test_vote_tie_must_be_known():
    with pytest.raises(InputError, match="vote_tie"):
        GreedyConfig(vote_tie="largest_id")
    assert GreedyConfig(class_weight=0.0).resolved_vote_tie == "smallest_id"
    assert GreedyConfig().resolved_vote_tie == "score"
