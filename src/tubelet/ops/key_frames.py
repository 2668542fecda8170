"""Key-frame placement of Propose-Reduce (Sec. 3.1 of the paper; REFERENCE_NOTES §1).

K key frames spread evenly over a T-frame video, first and last frame included:
``t_k = int(k (T - 1) / (K - 1))`` for k = 0..K-1.
"""
from __future__ import annotations


def key_frames(num_frames: int, num_keys: int) -> list[int]:
    """Indices of the key frames of a ``num_frames``-frame video (T) for ``num_keys`` keys (K).

    Args:
        num_frames: T >= 0, the video length.
        num_keys: K >= 1. K = 1 gives ``[0]`` (the formula divides by K - 1).
    Returns:
        Sorted, distinct frame indices: ``[int(k (T-1)/(K-1)) for k in 0..K-1]`` when T >= K;
        every frame ``[0, ..., T-1]`` when T < K (the formula would repeat frames); ``[]`` when
        T = 0.

    The floor is computed in integers, ``k (T-1) // (K-1)``: the released code multiplies a float
    step, whose rounding could in principle land just below an integer and pick the frame before.
    """
    if num_keys < 1:
        raise ValueError(f"key_frames: need at least one key frame, got K = {num_keys}")
    if num_frames < 0:
        raise ValueError(f"key_frames: negative video length T = {num_frames}")
    if num_frames == 0:
        return []
    if num_keys == 1:
        return [0]
    if num_frames < num_keys:
        return list(range(num_frames))
    return [k * (num_frames - 1) // (num_keys - 1) for k in range(num_keys)]
