"""Frame mask IoU and sequence IoU against slow loop references and hand-derived numbers."""
import numpy as np
import pytest
import torch

from tubelet.ops import (mask_iou, mask_iou_dense, mask_iou_rle, rle_intersections, sequence_iou,
                         sequence_iou_dense, sequence_iou_rle)
from tubelet.structures import rle


# ------------------------------------------------------------------ slow references
def ref_mask_iou(a, b):
    """Pixel loops over dense [N,H,W] x [M,H,W]; empty vs empty = 0."""
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            inter = union = 0
            for y in range(a.shape[1]):
                for x in range(a.shape[2]):
                    p, q = bool(a[i, y, x]), bool(b[j, y, x])
                    inter += p and q
                    union += p or q
            out[i, j] = inter / union if union else 0.0
    return out


def ref_seq_iou(a, b):
    """sum_t |A_t ∩ B_t| / sum_t |A_t ∪ B_t| with explicit frame loops; None = empty."""
    out = np.zeros((len(a), len(b)))
    for i, sa in enumerate(a):
        for j, sb in enumerate(b):
            inter = union = 0
            for ma, mb in zip(sa, sb):
                if ma is None and mb is None:
                    continue
                if ma is None:
                    union += int(mb.sum())
                elif mb is None:
                    union += int(ma.sum())
                else:
                    inter += int(np.logical_and(ma, mb).sum())
                    union += int(np.logical_or(ma, mb).sum())
            out[i, j] = inter / union if union else 0.0
    return out


def _rand(rng, shape, p=0.35):
    return rng.random(shape) < p


def _to_rle_seqs(m, none_if_empty=True):
    """[N, T, H, W] -> N lists of T RLE-or-None (None where empty)."""
    return [[None if (none_if_empty and not m[i, t].any()) else rle.encode(m[i, t])
             for t in range(m.shape[1])] for i in range(m.shape[0])]


# ------------------------------------------------------------------ frame IoU
def test_mask_iou_hand_numbers():
    a = np.zeros((2, 4, 4), bool)
    a[0, :2, :2] = True  # 4 px
    b = np.zeros((3, 4, 4), bool)
    b[0, :2, :3] = True  # 6 px, overlap 4 -> 4/6
    b[1, 2:, 2:] = True  # disjoint -> 0
    # b[2] empty; a[1] empty -> empty vs empty = 0
    want = np.array([[4 / 6, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(mask_iou_dense(a, b), want)
    np.testing.assert_allclose(mask_iou_rle(rle.encode_many(a), rle.encode_many(b)), want)
    # None = no mask in this frame (empty)
    np.testing.assert_allclose(mask_iou(rle.encode_many(a), [None, rle.encode(b[0]), None]),
                               [[0, 4 / 6, 0], [0, 0, 0]])
    got = mask_iou_dense(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("n,m", [(0, 3), (3, 0), (0, 0), (4, 5)])
def test_mask_iou_matches_reference(n, m):
    rng = np.random.default_rng(n * 10 + m)
    a, b = _rand(rng, (n, 6, 7)), _rand(rng, (m, 6, 7))
    if n:
        a[0] = False  # an empty mask
    want = ref_mask_iou(a, b)
    for got in (mask_iou(a, b), mask_iou(a.astype(np.float32), b.astype(np.float32)),
                mask_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy(),
                mask_iou(rle.encode_many(a), rle.encode_many(b))):
        assert got.shape == (n, m)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_rle_intersections_are_exact_integers():
    rng = np.random.default_rng(1)
    a, b = _rand(rng, (5, 33, 41), 0.5), _rand(rng, (4, 33, 41), 0.5)
    inter, aa, ab = rle_intersections(rle.encode_many(a), rle.encode_many(b))
    want = np.array([[np.logical_and(x, y).sum() for y in b] for x in a])
    assert inter.dtype == np.int64 and np.array_equal(inter, want)
    assert np.array_equal(aa, a.reshape(5, -1).sum(1)) and np.array_equal(ab, b.reshape(4, -1).sum(1))


def test_rle_path_handles_many_masks():
    # pycocotools.mask.area overflows on lists of >= 256 RLEs under numpy 2
    m = np.zeros((300, 2, 3), bool)
    m[::2, 0, :] = True  # even masks: 3 px in row 0; odd masks empty
    got = mask_iou_rle(rle.encode_many(m), rle.encode_many(m[:2]))
    assert got.shape == (300, 2)
    assert got[:, 0].tolist() == [1.0, 0.0] * 150 and got[:, 1].tolist() == [0.0] * 300


def test_mask_iou_rejects_mixed_sizes_and_kinds():
    r1, r2 = rle.encode(np.ones((4, 5), bool)), rle.encode(np.ones((5, 4), bool))
    with pytest.raises(ValueError):
        mask_iou_rle([r1], [r2])
    with pytest.raises(TypeError):
        mask_iou([r1], np.ones((1, 4, 5), bool))


# ------------------------------------------------------------------ sequence IoU
def test_sequence_iou_hand_numbers():
    # T = 2 frames of 1 x 4. Seq A: frame0 px {0,1}, frame1 px {0}.
    # Seq B: frame0 px {1,2}, frame1 empty (None). Seq C: absent everywhere.
    a = np.zeros((3, 2, 1, 4), bool)
    a[0, 0, 0, :2] = True
    a[0, 1, 0, 0] = True
    a[1, 0, 0, 1:3] = True
    # A vs B: inter = 1 (frame0), union = 3 (frame0) + 1 (frame1, only A) = 4 -> 0.25
    want = np.array([[1, 0.25, 0], [0.25, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(sequence_iou(a), want)
    np.testing.assert_allclose(sequence_iou(_to_rle_seqs(a)), want)
    np.testing.assert_allclose(sequence_iou(torch.from_numpy(a)).numpy(), want)


@pytest.mark.parametrize("n,m,t", [(0, 2, 3), (3, 0, 2), (3, 4, 1), (4, 3, 5)])
def test_sequence_iou_matches_reference(n, m, t):
    rng = np.random.default_rng(100 + n * 7 + m * 3 + t)
    a, b = _rand(rng, (n, t, 5, 6), 0.3), _rand(rng, (m, t, 5, 6), 0.3)
    if n and t > 1:
        a[0, 1] = False  # an empty frame
    if m:
        b[-1] = False  # an all-empty sequence
    ra, rb = _to_rle_seqs(a), _to_rle_seqs(b)
    want = ref_seq_iou([[x if x.any() else None for x in s] for s in a],
                       [[x if x.any() else None for x in s] for s in b])
    for got in (sequence_iou_dense(a, b), sequence_iou_dense(torch.from_numpy(a),
                                                             torch.from_numpy(b)).numpy(),
                sequence_iou_rle(ra, rb),
                sequence_iou_rle(_to_rle_seqs(a, False), _to_rle_seqs(b, False))):
        assert got.shape == (n, m)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_sequence_iou_self_identical_and_all_empty():
    rng = np.random.default_rng(5)
    a = _rand(rng, (3, 4, 6, 6))
    a[1] = a[0]  # identical sequences -> IoU 1
    a[2] = False  # all empty -> 0 with everything, itself included
    got = sequence_iou_rle(_to_rle_seqs(a))
    assert got[0, 1] == 1.0 and got[1, 0] == 1.0
    assert np.all(got[2] == 0) and np.all(got[:, 2] == 0)
    np.testing.assert_allclose(got, got.T)
    np.testing.assert_allclose(got, ref_seq_iou(
        [[x if x.any() else None for x in s] for s in a],
        [[x if x.any() else None for x in s] for s in a]))


def test_sequence_iou_rejects_bad_shapes():
    with pytest.raises(ValueError):
        sequence_iou_rle([[None, None]], [[None]])
    r1, r2 = rle.encode(np.ones((4, 5), bool)), rle.encode(np.ones((5, 4), bool))
    with pytest.raises(ValueError):
        sequence_iou_rle([[r1, None], [None, r2]])
    with pytest.raises(ValueError):
        sequence_iou_dense(np.zeros((1, 2, 3, 3)), np.zeros((1, 3, 3, 3)))
