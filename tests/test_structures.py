import numpy as np
import pytest
import torch

from tubelet.structures import FrameInstances, VideoInstances, rle


def _rand_masks(rng, n, h, w, p=0.3):
    return rng.random((n, h, w)) < p


def test_rle_roundtrip_and_area():
    rng = np.random.default_rng(0)
    m = _rand_masks(rng, 5, 7, 9)
    rles = rle.encode_many(m)
    assert all(isinstance(r["counts"], str) and r["size"] == [7, 9] for r in rles)
    assert np.array_equal(rle.decode_many(rles, 7, 9), m)
    assert rle.area(rles).tolist() == m.reshape(5, -1).sum(1).tolist()
    assert rle.area(rles[0]) == int(m[0].sum())
    assert rle.encode_many(np.zeros((0, 3, 4))) == []


def test_to_rle_accepts_uncompressed_and_polygon():
    m = np.zeros((4, 5), dtype=np.uint8)
    m[1:3, 2:4] = 1
    # column-major run lengths by hand: col0 4 zeros, col1 4 zeros, col2: 1 zero, 2 ones, 1 zero...
    counts = [9, 2, 2, 2, 5]
    r = rle.to_rle({"size": [4, 5], "counts": counts}, 4, 5)
    assert np.array_equal(rle.decode(r), m)
    poly = [[0.0, 0.0, 3.0, 0.0, 3.0, 3.0, 0.0, 3.0]]
    r = rle.to_rle(poly, 4, 5)
    assert r["size"] == [4, 5] and rle.area(r) > 0
    assert rle.to_rle(None, 4, 5) is None
    with pytest.raises(ValueError):
        rle.to_rle({"size": [4, 5], "counts": [1, 2]}, 4, 5)  # sums to 3, not 20
    with pytest.raises(ValueError):
        rle.to_rle("nonsense", 4, 5)


def test_video_instances_dense_roundtrip_and_indexing():
    rng = np.random.default_rng(1)
    dense = rng.random((3, 4, 6, 8)) < 0.4
    dense[1, 2] = False  # an absent frame
    vi = VideoInstances.from_dense(torch.from_numpy(dense), [0.9, 0.5, 0.7], [1, 2, 1])
    assert len(vi) == 3 and vi.masks[1][2] is None
    assert np.array_equal(vi.to_dense(), dense)
    assert np.array_equal(vi.to_dense(1, 3), dense[:, 1:3])
    sub = vi[vi.scores > 0.6]
    assert len(sub) == 2 and sub.labels.tolist() == [1, 1] and sub.track_ids.tolist() == [0, 2]
    assert np.array_equal(vi.areas(), dense.reshape(3, 4, -1).sum(-1))
    cat = VideoInstances.cat([vi[0], vi[2]])
    assert cat.scores.tolist() == [0.9, 0.7]
    recs = vi.to_results(7)
    assert recs[1]["segmentations"][2] is None and recs[0]["video_id"] == 7
    back = VideoInstances.from_results(recs, 6, 8, 4)
    assert np.array_equal(back.to_dense(), dense)
    with pytest.raises(IndexError):
        vi.to_dense(2, 9)


def test_video_instances_rejects_inconsistent_fields():
    with pytest.raises(ValueError):
        VideoInstances(4, 4, 2, [[None, None]], [0.5, 0.6], [1])
    with pytest.raises(ValueError):
        VideoInstances(4, 4, 2, [[None]], [0.5], [1])


def test_frame_instances_index():
    fi = FrameInstances(np.zeros((3, 4, 5), bool), [0.1, 0.2, 0.3], [0, 1, 2],
                        class_probs=np.eye(3))
    sub = fi[np.array([False, True, True])]
    assert sub.scores.tolist() == [0.2, 0.3] and sub.class_probs.shape == (2, 3)
    assert fi.image_size == (4, 5)
    with pytest.raises(ValueError):
        FrameInstances(np.zeros((2, 4, 5), bool), [0.1], [0])
