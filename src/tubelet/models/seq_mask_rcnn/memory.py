"""Bounded memory of one Seq-Prop propagation pass (from one key frame, in one direction).

What the released code does (REFERENCE_NOTES §1): the memory starts with the key frame (keys and
values of the key-frame masks); while propagating, frame t is written when
``|t - t_key| % mem_step == 0`` (with the soft-aggregated prediction of that frame), and nothing
is ever removed, so memory grows with the video (T / mem_step frames; T with the released
configs' mem_step = 1).

Policy here: the same write rule, plus a cap on the number of frames held. The key frame(s) are
always kept (they hold the detector's masks, the only frames not produced by propagation); when a
write would exceed ``cap``, the *oldest written* frame is dropped, so the memory is the key
frame(s) + the ``cap - #key`` most recently written frames. ``cap=None`` reproduces the unbounded
released behaviour.
"""
from __future__ import annotations

import torch
from torch import Tensor


class PropagationMemory:
    """Memory keys / values of at most ``cap`` frames for K objects.

    Args:
        cap: most frames held, key frames included (>= 2, so one written frame fits beside a key
            frame); ``None`` = unbounded.
        mem_step: write every ``mem_step`` frames counted from the last key frame (paper 5).

    Usage::

        mem = PropagationMemory(cap=8, mem_step=5)
        mem.add_key_frame(t_key, *head.encode_memory(p2[t_key], key_masks))
        for t in range(t_key + 1, T):
            probs = head(mem.keys, mem.values, ...)          # [K, H, W]
            if mem.should_write(t):
                mem.write(t, *head.encode_memory(p2[t], probs))
    """

    def __init__(self, cap: int | None = 8, mem_step: int = 5):
        if cap is not None and cap < 2:
            raise ValueError(f"PropagationMemory: cap must be >= 2 or None, got {cap}")
        if mem_step < 1:
            raise ValueError(f"PropagationMemory: mem_step must be >= 1, got {mem_step}")
        self.cap, self.mem_step = cap, mem_step
        self.reset()

    def reset(self) -> None:
        """Forget everything (start of a new propagation pass)."""
        self._frames: list[int] = []
        self._permanent: list[bool] = []
        self._keys: list[Tensor] = []    # each [K, D_k, h, w]
        self._values: list[Tensor] = []  # each [K, D_v, h, w]
        self._anchor: int | None = None

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def frames(self) -> list[int]:
        """Frame index of each memory slot, in memory order (key frames and writes by age)."""
        return list(self._frames)

    @property
    def keys(self) -> Tensor:
        """``[K, D_k, T_m, h, w]`` with T_m = ``len(self)`` slots."""
        return torch.stack(self._keys, dim=2)

    @property
    def values(self) -> Tensor:
        """``[K, D_v, T_m, h, w]``."""
        return torch.stack(self._values, dim=2)

    def _append(self, frame: int, keys: Tensor, values: Tensor, permanent: bool) -> None:
        if self._keys and (keys.shape != self._keys[0].shape
                           or values.shape != self._values[0].shape):
            raise ValueError(f"memory slot shapes differ: keys {tuple(keys.shape)} vs "
                             f"{tuple(self._keys[0].shape)}, values {tuple(values.shape)} vs "
                             f"{tuple(self._values[0].shape)}")
        self._frames.append(int(frame))
        self._permanent.append(permanent)
        self._keys.append(keys)
        self._values.append(values)

    def add_key_frame(self, frame: int, keys: Tensor, values: Tensor) -> None:
        """Add a key frame (never evicted) and count the write rule from it.

        keys ``[K, D_k, h, w]``, values ``[K, D_v, h, w]``.
        """
        if self.cap is not None and sum(self._permanent) + 1 >= self.cap:
            raise ValueError(f"PropagationMemory: {sum(self._permanent) + 1} key frames leave no "
                             f"room for written frames with cap {self.cap}")
        self._append(frame, keys, values, permanent=True)
        self._anchor = int(frame)

    def should_write(self, frame: int) -> bool:
        """Whether ``frame`` is written: ``|frame - t_key| % mem_step == 0`` and not the key frame
        itself (forward and backward passes alike, as in the released code)."""
        if self._anchor is None:
            raise RuntimeError("PropagationMemory: add a key frame first")
        dist = abs(int(frame) - self._anchor)
        return dist > 0 and dist % self.mem_step == 0

    def write(self, frame: int, keys: Tensor, values: Tensor) -> None:
        """Write a propagated frame; evict the oldest written frame when over ``cap``.

        keys ``[K, D_k, h, w]``, values ``[K, D_v, h, w]``.
        """
        if self._anchor is None:
            raise RuntimeError("PropagationMemory: add a key frame first")
        self._append(frame, keys, values, permanent=False)
        if self.cap is not None and len(self._frames) > self.cap:
            oldest = self._permanent.index(False)  # slots are in write order
            for store in (self._frames, self._permanent, self._keys, self._values):
                del store[oldest]
