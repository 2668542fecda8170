"""The video interface every reader implements: length, frame rate, size, iteration, ``video[t]``.

Online methods iterate a video (lazy, sequential, one decoded frame alive at a time); offline
methods (Propose-Reduce's key frames, propagated forwards and backwards) index it. An index read
goes through the source's bounded :class:`~tubelet.video.cache.FrameCache`, the only frame storage,
so an offline method's frame memory is ``cache_size * H * W * 3`` bytes, not the video's length.
"""
from __future__ import annotations

import operator
from typing import Iterator

import numpy as np

from tubelet.video.cache import FrameCache


class VideoSource:
    """A video opened for reading.

    Attributes:
        path: the file or folder it was opened from (a ``<...>`` description for in-memory ones).
        name: a short name (file stem or folder name).
        fps: frames per second (float).
        width, height: frame size W, H in pixels; ``size`` is ``(H, W)``.
        num_frames: number of frames T, or ``None`` while it is not known (a container that does
            not state it, before ``len()`` has counted it).
        cache: the bounded LRU of decoded frames behind ``video[t]`` (None when the frames are in
            memory anyway, as in :class:`~tubelet.video.ArrayVideo`).

    ``iter(video)`` yields ``np.ndarray [H, W, 3]`` uint8 RGB frames lazily from the first one, on
    its own decoder (the cache is neither used nor filled). ``len(video)`` is T and ``video[t]``
    (``-T <= t < T``, negative as in Python) is frame ``t`` as a fresh writable ``[H, W, 3]``
    array, decoded on demand. Use as a context manager or call :meth:`close`.
    """
    path: str
    name: str
    fps: float
    width: int
    height: int
    num_frames: int | None
    cache: FrameCache | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return self.height, self.width

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError(f"{type(self).__name__} does not know its length")
        return self.num_frames

    def __bool__(self) -> bool:
        # Without this, ``if video:`` would call __len__ (and may demux a whole file to count).
        return True

    def __getitem__(self, t: int) -> np.ndarray:
        """Frame ``t`` as RGB uint8 ``[H, W, 3]`` (a copy: the cache keeps its own)."""
        t = self._check_index(t)
        frame = self.cache.get(t) if self.cache is not None else None
        if frame is None:
            frame = self._read(t)
            if self.cache is not None:
                self.cache.put(t, frame)
        return frame.copy()

    def _read(self, t: int) -> np.ndarray:
        """Decode frame ``0 <= t < len(self)`` (``[H, W, 3]``). Subclasses may put other frames
        they decode on the way into :attr:`cache`; the caller puts frame ``t`` there."""
        raise TypeError(f"{type(self).__name__} has no random access")

    def _check_index(self, t: int) -> int:
        """``t`` as an index in ``[0, T)``; negative counts from the end."""
        if isinstance(t, slice):
            raise TypeError("index a video with one int (a slice would decode every frame of it "
                            "at once); use [video[t] for t in range(a, b)]")
        try:
            i = operator.index(t)
        except TypeError:
            raise TypeError(f"video indices must be integers, not {type(t).__name__}") from None
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame index {i} out of range for a video of {n} frames")
        return i + n if i < 0 else i

    def frame_stem(self, t: int) -> str:
        """File stem used for per-frame outputs of frame ``t`` (e.g. PNG masks): ``00005``."""
        return f"{t:05d}"

    def close(self) -> None:
        """Release decoders and the cache; later reads reopen what they need."""
        if self.cache is not None:
            self.cache.clear()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, {self.width}x{self.height}, "
                f"{self.num_frames} frames, {self.fps:g} fps)")
