"""A bounded least-recently-used store of decoded frames.

It is the only place a random-access :class:`~tubelet.video.VideoSource` keeps decoded frames, so
the frame memory of a reader is at most ``capacity * H * W * 3`` bytes whatever the video length
(plus the one frame being decoded and whatever the caller keeps).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

# 16 RGB frames: 16 MB at 640x360, 20 MB at 854x480 (DAVIS), 100 MB at 1920x1080. Enough to hold a
# whole short GOP, so reading backwards frame by frame decodes each GOP about once.
DEFAULT_CACHE_SIZE = 16


class FrameCache:
    """LRU map frame index ``t`` -> RGB uint8 frame ``[H, W, 3]``, holding at most ``capacity``.

    :meth:`get` and :meth:`put` both mark a frame as most recently used; a :meth:`put` past the
    capacity drops the least recently used frame.

    Args:
        capacity: the most frames kept (>= 1).
    """

    def __init__(self, capacity: int = DEFAULT_CACHE_SIZE):
        if int(capacity) < 1:
            raise ValueError(f"a frame cache holds at least 1 frame, got cache_size={capacity}")
        self.capacity = int(capacity)
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()  # oldest use first

    def get(self, t: int) -> np.ndarray | None:
        """The cached frame ``t`` (``[H, W, 3]``, not a copy) or None."""
        frame = self._frames.get(t)
        if frame is not None:
            self._frames.move_to_end(t)
        return frame

    def put(self, t: int, frame: np.ndarray) -> None:
        """Store frame ``t`` (``[H, W, 3]``), evicting the least recently used beyond capacity."""
        self._frames[t] = frame
        self._frames.move_to_end(t)
        while len(self._frames) > self.capacity:
            self._frames.popitem(last=False)

    def indices(self) -> list[int]:
        """Cached frame indices, least recently used first."""
        return list(self._frames)

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data held."""
        return sum(f.nbytes for f in self._frames.values())

    def clear(self) -> None:
        self._frames.clear()

    def __contains__(self, t: object) -> bool:
        return t in self._frames

    def __len__(self) -> int:
        return len(self._frames)

    def __repr__(self) -> str:
        return f"FrameCache({len(self)}/{self.capacity} frames)"
