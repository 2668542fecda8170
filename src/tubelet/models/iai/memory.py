"""IAI's association memory: long-term (global) and short-term (local) (REFERENCE_NOTES §3).

* Local memory: the previous written frame's keys and values, replaced at every write.
* Global memory: the first written frame, then a frame whenever ``every`` (3) frames have passed
  since the last global entry or a new instance appears (a slot that no earlier write held).
* Cap (not in the original, which never prunes: its memory and attention cost grow linearly with
  the video): at most ``cap`` global frames. Policy when a write goes over the cap: keep the first
  frame (the instances' first, and usually only mask-supervised-by-choice, reference) and drop the
  oldest other entry, so the memory keeps frame 0 plus the ``cap - 1`` most recent stored frames.
  ``cap=None`` reproduces the unbounded original.

A memory serves a batch of B clips processed in lockstep (training); the write decision is shared
by the batch (a new instance in any clip stores the frame for all), so every entry has the same
token count and the entries concatenate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class AssociationMemory:
    """Keys and values of past frames (B clips, D width, hw tokens per frame).

    Attributes:
        every: frames between periodic global writes (3).
        cap: maximum number of global frames (None = unbounded, the original).
        global_keys, global_values: per stored frame ``[B, hw, D]``.
        global_frames: the frame index of each stored entry.
        local_key, local_value: ``[B, hw, D]`` of the previous written frame (None before any).
        seen: ``[B, N]`` bool, slots present in any written frame so far (None before any).
    """
    every: int = 3
    cap: int | None = 16
    global_keys: list[Tensor] = field(default_factory=list)
    global_values: list[Tensor] = field(default_factory=list)
    global_frames: list[int] = field(default_factory=list)
    local_key: Tensor | None = None
    local_value: Tensor | None = None
    seen: Tensor | None = None

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"memory write interval must be >= 1, got {self.every}")
        if self.cap is not None and self.cap < 1:
            raise ValueError(f"global memory cap must be >= 1 or None, got {self.cap}")

    def __len__(self) -> int:
        """Number of global entries."""
        return len(self.global_keys)

    def write(self, frame: int, keys: Tensor, values: Tensor, present: Tensor) -> bool:
        """Store one frame.

        Args:
            frame: its index in the video (increasing over writes).
            keys, values: ``[B, hw, D]``.
            present: ``[B, N]`` bool, the slots in its ID mask.

        Returns:
            True when the frame also entered the global memory.
        """
        seen = self.seen if self.seen is not None else torch.zeros_like(present)
        new_instance = bool((present & ~seen).any())
        self.seen = seen | present
        self.local_key, self.local_value = keys, values
        due = not self.global_frames or frame - self.global_frames[-1] >= self.every
        if not (due or new_instance):
            return False
        self.global_keys.append(keys)
        self.global_values.append(values)
        self.global_frames.append(frame)
        while self.cap is not None and len(self.global_keys) > self.cap:
            # entry 0 is the first frame; entry 1 the oldest other (the new one when cap = 1)
            for entries in (self.global_keys, self.global_values, self.global_frames):
                del entries[1]
        return True

    def global_kv(self) -> tuple[Tensor, Tensor] | None:
        """``(keys, values)`` each ``[B, M * hw, D]`` over the stored frames, or None."""
        if not self.global_keys:
            return None
        return torch.cat(self.global_keys, dim=1), torch.cat(self.global_values, dim=1)

    def local_kv(self) -> tuple[Tensor, Tensor] | None:
        """The previous written frame's ``(keys, values)`` each ``[B, hw, D]``, or None."""
        if self.local_key is None:
            return None
        return self.local_key, self.local_value
