"""Lazy video readers: a video file (anything PyAV decodes), a folder of frames, or a dataset
video's explicit list of frame files.

``open_video(source)`` returns a :class:`~tubelet.video.source.VideoSource`; iterating it yields
RGB uint8 frames ``[H, W, 3]`` one at a time, so a long video never sits in memory, and
``video[t]`` reads frame ``t`` on demand through a bounded cache of ``cache_size`` frames. Every
bad input (missing path, empty or corrupt file, a folder with no images, frames of different
sizes, a decode error half-way) raises :class:`~tubelet.errors.InputError` naming the path,
never a bare PyAV or PIL traceback; an index out of range raises IndexError.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from tubelet.errors import InputError
from tubelet.video.cache import DEFAULT_CACHE_SIZE, FrameCache
from tubelet.video.file_source import FrameIndex, VideoFileSource
from tubelet.video.source import VideoSource

# A frame folder has no frame rate of its own; 24 fps is the rate of the overlay videos we write
# for it (YouTube-VIS frames are 6 fps after its 5x subsampling, DAVIS 24 fps, so neither is
# "right": pass fps to open_video / the writer yourself when it matters).
DEFAULT_FOLDER_FPS = 24.0
# YouTube-VIS annotates every 5th frame of 30 fps videos: its frame lists play at 6 fps.
YTVIS_FPS = 6.0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_FOLDER_FPS", "YTVIS_FPS", "DatasetVideo",
           "FrameFolderSource", "FrameIndex", "VideoFileSource", "VideoSource", "natural_key",
           "open_video"]


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png`` (digit runs compared as ints)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


class _FrameFiles(VideoSource):
    """Shared reading of a list of image files: frame ``t`` is ``files[t]``, read directly."""
    files: list[Path]

    @staticmethod
    def _open(file: Path) -> Image.Image:
        try:
            return Image.open(file)
        except FileNotFoundError:
            raise InputError("frame file not found", path=str(file)) from None
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise InputError(f"unreadable image: {exc}", path=str(file)) from None

    def _size_error(self, file: Path, width: int, height: int) -> InputError:
        raise NotImplementedError

    def _load(self, file: Path) -> np.ndarray:
        img = self._open(file)
        try:
            with img:
                if img.size != (self.width, self.height):
                    raise self._size_error(file, *img.size)
                return np.array(img.convert("RGB"), dtype=np.uint8)  # [H, W, 3], writable copy
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # truncated / corrupt pixel data, or a decompression bomb (PIL's pixel limit)
            raise InputError(f"unreadable image: {exc}", path=str(file)) from None

    def __iter__(self) -> Iterator[np.ndarray]:
        for file in self.files:
            yield self._load(file)

    def _read(self, t: int) -> np.ndarray:
        return self._load(self.files[t])

    def frame_stem(self, t: int) -> str:
        return self.files[t].stem


class FrameFolderSource(_FrameFiles):
    """A folder of ``.jpg``/``.jpeg``/``.png`` frames, in natural name order.

    All frames must have the size of the first one; a frame of another size (or an unreadable
    one) raises :class:`InputError` naming that file when iteration or ``video[t]`` reaches it.
    """

    def __init__(self, folder: str | os.PathLike, fps: float = DEFAULT_FOLDER_FPS,
                 cache_size: int = DEFAULT_CACHE_SIZE):
        folder = Path(folder)
        self.path = str(folder)
        self.name = folder.resolve().name
        self.fps = float(fps)
        self.cache = FrameCache(cache_size)
        self.files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
            key=lambda p: natural_key(p.name))
        if not self.files:
            raise InputError(f"folder has no frames ({'/'.join(IMAGE_EXTENSIONS)} files)",
                             path=self.path)
        # Only the header of the first frame is read here: PIL's open() is lazy.
        with self._open(self.files[0]) as first:
            self.width, self.height = first.size
        self.num_frames = len(self.files)

    def _size_error(self, file: Path, width: int, height: int) -> InputError:
        return InputError(f"frame size {width}x{height} differs from the first frame's "
                          f"{self.width}x{self.height} ({self.files[0].name})", path=str(file))


class DatasetVideo(_FrameFiles):
    """A dataset video: an explicit list of frame files of a known size (YouTube-VIS
    ``file_names`` under an image root).

    Nothing is read when it is built; a missing, unreadable or wrongly sized frame raises
    :class:`InputError` naming the file when iteration or ``video[t]`` reaches it.

    Args:
        files: the T frame files, in video order (kept as given, not sorted).
        size: the expected frame size ``(H, W)``.
        fps: frame rate (YouTube-VIS: :data:`YTVIS_FPS`).
        name: a short name (default: the folder of the first file).
        cache_size: frames kept by the LRU behind ``video[t]``.
    """

    def __init__(self, files: Sequence[str | os.PathLike], size: tuple[int, int],
                 fps: float = YTVIS_FPS, name: str | None = None,
                 cache_size: int = DEFAULT_CACHE_SIZE):
        self.files = [Path(f) for f in files]
        if not self.files:
            raise InputError("a dataset video needs at least one frame file")
        self.height, self.width = int(size[0]), int(size[1])
        if self.height <= 0 or self.width <= 0:
            raise InputError(f"video size {self.height}x{self.width} must be positive",
                             path=str(self.files[0].parent))
        self.path = str(self.files[0].parent)
        self.name = name if name is not None else self.files[0].parent.name
        self.fps = float(fps)
        self.cache = FrameCache(cache_size)
        self.num_frames = len(self.files)

    @classmethod
    def from_record(cls, video, image_root: str | os.PathLike, fps: float = YTVIS_FPS,
                    cache_size: int = DEFAULT_CACHE_SIZE) -> "DatasetVideo":
        """The frames of a dataset video record (a :class:`tubelet.data.ytvis.Video`, or anything
        with ``file_names``, ``height``, ``width``, ``name`` and ``length``) under
        ``image_root``; without file names, ``<name>/00000.jpg``, ... as YouTube-VIS lays
        them out."""
        names = list(video.file_names) or [f"{video.name}/{t:05d}.jpg"
                                           for t in range(video.length)]
        return cls([Path(image_root) / n for n in names], (video.height, video.width), fps=fps,
                   name=video.name or None, cache_size=cache_size)

    def _size_error(self, file: Path, width: int, height: int) -> InputError:
        # H x W, as the dataset loaders word it (tubelet.data.clips, tubelet.engine.predict).
        return InputError(f"frame size {height}x{width} differs from video size "
                          f"{self.height}x{self.width}", path=str(file))


def open_video(source: str | os.PathLike, cache_size: int = DEFAULT_CACHE_SIZE,
               fps: float | None = None) -> VideoSource:
    """Open a video file or a folder of frames for lazy reading.

    Args:
        source: a video file PyAV can decode, or a folder of jpg/png frames (natural name order).
        cache_size: frames kept by the LRU behind ``video[t]`` (:data:`DEFAULT_CACHE_SIZE` = 16);
            random reads hold at most ``cache_size * H * W * 3`` bytes of frames.
        fps: frame rate; default the container's for a file, :data:`DEFAULT_FOLDER_FPS` for a
            folder.

    Returns:
        a :class:`VideoSource`: iterate it for RGB uint8 ``[H, W, 3]`` frames, or index it.

    Raises:
        InputError: missing path, empty/corrupt/non-video file, folder without images.
    """
    path = Path(source)
    if not path.exists():
        raise InputError("no such file or folder", path=str(path))
    if path.is_dir():
        return FrameFolderSource(path, fps=fps or DEFAULT_FOLDER_FPS, cache_size=cache_size)
    if path.stat().st_size == 0:
        raise InputError("file is empty", path=str(path))
    return VideoFileSource(path, cache_size=cache_size, fps=fps)
