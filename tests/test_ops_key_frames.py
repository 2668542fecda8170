"""Key-frame placement t_k = int(k (T-1)/(K-1)); expected lists derived by hand."""
import pytest

from tubelet.ops.key_frames import key_frames


def test_fewer_frames_than_keys_uses_every_frame():
    assert key_frames(3, 5) == [0, 1, 2]
    assert key_frames(1, 5) == [0]


def test_as_many_frames_as_keys():
    # k (T-1)/(K-1) = k * 4/4 = k
    assert key_frames(5, 5) == [0, 1, 2, 3, 4]


def test_more_frames_than_keys():
    # T = 36, K = 5: step 35/4 = 8.75 -> 0, 8.75, 17.5, 26.25, 35 -> floor
    assert key_frames(36, 5) == [0, 8, 17, 26, 35]
    # T = 10, K = 3: step 4.5 -> 0, 4.5, 9
    assert key_frames(10, 3) == [0, 4, 9]
    # T = 6, K = 5: step 1.25 -> 0, 1.25, 2.5, 3.75, 5
    assert key_frames(6, 5) == [0, 1, 2, 3, 5]
    # T = 2, K = 2: first and last
    assert key_frames(2, 2) == [0, 1]


def test_single_key_frame_and_empty_video():
    assert key_frames(36, 1) == [0]
    assert key_frames(0, 5) == []


def test_last_frame_always_included_and_sorted_distinct():
    for t in range(1, 60):
        for k in range(2, 8):
            ks = key_frames(t, k)
            assert ks[0] == 0 and ks[-1] == t - 1
            assert ks == sorted(set(ks)) and len(ks) == min(t, k)


def test_bad_arguments():
    with pytest.raises(ValueError):
        key_frames(10, 0)
    with pytest.raises(ValueError):
        key_frames(-1, 3)
