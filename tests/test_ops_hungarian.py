"""Hungarian matching (``tubelet.ops.hungarian``) against brute force and hand numbers."""
import itertools

import numpy as np
import pytest
import torch

from tubelet.ops import hungarian


def brute_force_min(cost: np.ndarray) -> float:
    """Smallest total cost of min(R, C) pairs, trying every injective map (<= 5! = 120)."""
    r, c = cost.shape
    if r == 0 or c == 0:
        return 0.0
    if r <= c:  # every row gets a distinct column
        return min(sum(cost[i, p[i]] for i in range(r)) for p in itertools.permutations(range(c), r))
    return min(sum(cost[p[j], j] for j in range(c)) for p in itertools.permutations(range(r), c))


def check_valid(cost, rows, cols):
    r, c = cost.shape
    assert rows.dtype == np.int64 and cols.dtype == np.int64
    assert len(rows) == len(cols) == min(r, c)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert rows.tolist() == sorted(rows.tolist())
    assert all(0 <= i < r for i in rows) and all(0 <= j < c for j in cols)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force_on_every_small_shape(seed, ties):
    rng = np.random.default_rng(seed)
    for r, c in itertools.product(range(6), range(6)):
        # ties: integer costs 0..2 make many optimal assignments; the pairs may differ from
        # any one of them, the total may not
        cost = rng.integers(0, 3, (r, c)).astype(float) if ties else rng.random((r, c))
        rows, cols = hungarian(cost)
        check_valid(cost, rows, cols)
        assert cost[rows, cols].sum() == pytest.approx(brute_force_min(cost), abs=1e-9)


def test_hand_numbers():
    # 3x3: 0->1 (1) + 1->0 (2) + 2->2 (2) = 5; every other permutation costs >= 6
    # (0->0,1->1,2->2 = 6; 0->2,1->1,2->0 = 6; 0->2,1->0,2->1 = 7; 0->1,1->2,2->0 = 9; 11)
    cost = np.array([[4, 1, 3], [2, 0, 5], [3, 2, 2]])
    rows, cols = hungarian(cost)
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]
    # wide: one row takes its cheapest column; tall: one column takes its cheapest row
    assert [a.tolist() for a in hungarian(np.array([[1.0, 0.0, 5.0]]))] == [[0], [1]]
    assert [a.tolist() for a in hungarian(np.array([[1.0], [0.0], [5.0]]))] == [[1], [0]]
    # negative costs (maximising a probability as -p): 0.9 + 0.8 beats 0.7 + 0.6
    rows, cols = hungarian(-np.array([[0.9, 0.7], [0.6, 0.8]]))
    assert cols.tolist() == [0, 1]


def test_torch_input_and_empty():
    rows, cols = hungarian(torch.tensor([[0.0, 1.0], [1.0, 0.0]], requires_grad=True))
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    for shape in [(0, 0), (0, 4), (3, 0)]:
        rows, cols = hungarian(np.zeros(shape))
        assert rows.shape == cols.shape == (0,) and rows.dtype == np.int64


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_an_error(bad):
    cost = np.zeros((2, 3))
    cost[1, 2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        hungarian(cost)


def test_needs_a_matrix():
    with pytest.raises(ValueError, match="2-D"):
        hungarian(np.zeros(3))
