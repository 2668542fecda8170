"""Videos that are not files: frames already in memory, or an iterable of frames; and
:func:`as_video`, which turns whatever a caller passes into a :class:`VideoSource`.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tubelet.errors import InputError
from tubelet.video.cache import DEFAULT_CACHE_SIZE
from tubelet.video.reader import DEFAULT_FOLDER_FPS, open_video
from tubelet.video.source import VideoSource

_RANDOM_ACCESS_NEEDS = "random access needs a video file, a frame folder or a list of frames"


def _check_frame(frame: np.ndarray, t: int, size: tuple[int, int] | None) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"frames must be RGB uint8 [H, W, 3], got {frame.dtype} "
                         f"{list(frame.shape)}", record=f"frame {t}")
    if size is not None and frame.shape[:2] != size:
        raise InputError(f"frame size {frame.shape[0]}x{frame.shape[1]} differs from video size "
                         f"{size[0]}x{size[1]}", record=f"frame {t}")


class ArrayVideo(VideoSource):
    """Frames already in memory, with the :class:`VideoSource` interface.

    The frames are referenced, not copied; ``video[t]`` and iteration hand out copies, so a method
    that draws on a frame never changes the caller's data. There is no cache (``cache`` is None):
    the frames are in memory anyway.

    Args:
        frames: a list/tuple of RGB uint8 ``[H, W, 3]`` frames of one size, or one ``[T, H, W, 3]``
            uint8 array (anything with ``__array__``, e.g. a CPU torch tensor).
        fps: frame rate.
        name: a short name.

    Raises:
        InputError: no frames, a frame that is not RGB uint8 ``[H, W, 3]``, frames of two sizes.
    """

    def __init__(self, frames: Any, fps: float = DEFAULT_FOLDER_FPS, name: str = "array"):
        if isinstance(frames, (list, tuple)):
            self._frames: Any = [np.asarray(f) for f in frames]  # T arrays [H, W, 3]
            if self._frames:
                size = self._frames[0].shape[:2]
                for t, f in enumerate(self._frames):
                    _check_frame(f, t, size)
        else:
            self._frames = np.asarray(frames)  # [T, H, W, 3]
            if self._frames.ndim != 4 or self._frames.shape[3] != 3 or \
                    self._frames.dtype != np.uint8:
                raise InputError(f"a video array must be RGB uint8 [T, H, W, 3], got "
                                 f"{self._frames.dtype} {list(self._frames.shape)}")
        if len(self._frames) == 0:
            raise InputError("a video needs at least one frame")
        self.height, self.width = (int(s) for s in self._frames[0].shape[:2])
        self.num_frames = len(self._frames)
        self.fps = float(fps)
        self.name = name
        self.path = f"<{self.num_frames} frames in memory>"

    def __iter__(self) -> Iterator[np.ndarray]:
        for f in self._frames:
            yield f.copy()

    def _read(self, t: int) -> np.ndarray:
        return self._frames[t]  # VideoSource.__getitem__ returns a copy


class IterableVideo(VideoSource):
    """An iteration-only wrapper around any iterable of frames (e.g. a generator).

    ``len()`` and ``video[t]`` raise TypeError; ``width``/``height`` look at the first frame
    (kept and yielded first). An iterator can be iterated once: a second pass raises
    RuntimeError rather than yielding nothing.

    Args:
        frames: an iterable of RGB uint8 ``[H, W, 3]`` frames (yielded as they come).
        fps: frame rate.
    """

    def __init__(self, frames: Iterable, fps: float = DEFAULT_FOLDER_FPS, name: str = "video"):
        self._source = frames
        self._kind = type(frames).__name__
        self._single_pass = iter(frames) is frames  # an iterator, not a re-iterable container
        self._started = False
        self._head: list = []  # the first frame, when looked at for the size before iteration
        self._hw: tuple[int, int] | None = None  # (H, W) of the first frame, once seen
        self.fps = float(fps)
        self.name = name
        self.path = f"<{self._kind}>"
        self.num_frames = None

    def _check_pass(self) -> None:
        if self._single_pass and self._started:
            raise RuntimeError(f"this video is a {self._kind}, already iterated; pass a list of "
                               f"frames or a path to read it twice")
        self._started = True

    @property
    def size(self) -> tuple[int, int]:
        if self._hw is None:  # peek: keep the first frame to yield it first
            self._check_pass()
            it = iter(self._source)
            try:
                self._head = [next(it)]
            except StopIteration:
                raise InputError(f"the {self._kind} yielded no frames") from None
            self._hw = tuple(int(s) for s in np.shape(self._head[0])[:2])
        return self._hw

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    def __iter__(self) -> Iterator[Any]:
        if self._single_pass and self._head:  # the peeked frame, then the rest of that pass
            head, self._head = self._head, []
        else:
            self._check_pass()
            head, self._head = [], []  # a re-iterable starts again from its first frame
        for frame in _chain(head, self._source):
            if self._hw is None:
                self._hw = tuple(int(s) for s in np.shape(frame)[:2])
            yield frame

    def _no_random_access(self) -> TypeError:
        article = "an" if self._kind[:1].lower() in "aeiou" else "a"
        return TypeError(f"{_RANDOM_ACCESS_NEEDS}; got {article} {self._kind}")

    def __len__(self) -> int:
        raise self._no_random_access()

    def __getitem__(self, t: int) -> np.ndarray:
        raise self._no_random_access()

    def __repr__(self) -> str:
        return f"IterableVideo({self.path}, {self.fps:g} fps)"


def _chain(head: list, rest: Iterable) -> Iterator[Any]:
    yield from head
    yield from rest


def as_video(obj: Any, fps: float | None = None,
             cache_size: int = DEFAULT_CACHE_SIZE) -> VideoSource:
    """``obj`` as a :class:`VideoSource`.

    - a VideoSource: returned as is;
    - a str / PathLike: :func:`~tubelet.video.open_video` (a video file or a frame folder);
    - a list / tuple of ``[H, W, 3]`` frames or a ``[T, H, W, 3]`` array (anything with
      ``__array__``): :class:`ArrayVideo`;
    - any other iterable of frames: :class:`IterableVideo` (iteration only: ``len()`` and
      ``video[t]`` raise TypeError).

    Args:
        fps: frame rate for sources that do not carry one (folders, arrays, iterables).
        cache_size: LRU size for a path (see :func:`~tubelet.video.open_video`).
    """
    if isinstance(obj, VideoSource):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return open_video(obj, cache_size=cache_size, fps=fps)
    if isinstance(obj, (list, tuple)) or hasattr(obj, "__array__"):
        return ArrayVideo(obj, fps=fps or DEFAULT_FOLDER_FPS)
    if isinstance(obj, Iterable):
        return IterableVideo(obj, fps=fps or DEFAULT_FOLDER_FPS)
    raise TypeError(f"cannot read a video from {type(obj).__name__}; pass a path, a list or "
                    f"array of frames, or an iterable of frames")
