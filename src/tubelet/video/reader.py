"""Lazy, streaming video readers: a video file (anything PyAV decodes) or a folder of frames.

``open_video(source)`` returns a :class:`VideoSource`; iterating it yields RGB uint8 frames
``[H, W, 3]`` one at a time, so a long video never sits in memory (the reader holds at most the
frame being decoded). Every bad input (missing path, empty or corrupt file, a folder with no
images, frames of different sizes, a decode error half-way) raises
:class:`~tubelet.errors.InputError` naming the path, never a bare PyAV or PIL traceback.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from tubelet.errors import InputError

# A frame folder has no frame rate of its own; 24 fps is the rate of the overlay videos we write
# for it (YouTube-VIS frames are 6 fps after its 5x subsampling, DAVIS 24 fps, so neither is
# "right": pass fps to the writer yourself when it matters).
DEFAULT_FOLDER_FPS = 24.0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png`` (digit runs compared as ints)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


class VideoSource:
    """A video opened for streaming.

    Attributes:
        path: the file or folder it was opened from.
        name: a short name (file stem or folder name).
        fps: frames per second (float; :data:`DEFAULT_FOLDER_FPS` for a folder of frames).
        width, height: frame size W, H in pixels.
        num_frames: number of frames T, or ``None`` when the container does not say (e.g. some
            webm/mkv streams); then the count is only known once iteration ends.

    Iterating yields ``np.ndarray [H, W, 3]`` uint8 RGB frames lazily; every ``iter()`` starts
    from the first frame again. Use as a context manager or call :meth:`close`.
    """
    path: str
    name: str
    fps: float
    width: int
    height: int
    num_frames: int | None

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def frame_stem(self, t: int) -> str:
        """File stem used for per-frame outputs of frame ``t`` (e.g. PNG masks): ``00005``."""
        return f"{t:05d}"

    def close(self) -> None:
        pass

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, {self.width}x{self.height}, "
                f"{self.num_frames} frames, {self.fps:g} fps)")


class FrameFolderSource(VideoSource):
    """A folder of ``.jpg``/``.jpeg``/``.png`` frames, in natural name order.

    All frames must have the size of the first one; a frame of another size (or an unreadable
    one) raises :class:`InputError` naming that file when iteration reaches it.
    """

    def __init__(self, folder: str | os.PathLike, fps: float = DEFAULT_FOLDER_FPS):
        folder = Path(folder)
        self.path = str(folder)
        self.name = folder.resolve().name
        self.fps = float(fps)
        self.files: list[Path] = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
            key=lambda p: natural_key(p.name))
        if not self.files:
            raise InputError(f"folder has no frames ({'/'.join(IMAGE_EXTENSIONS)} files)",
                             path=self.path)
        # Only the header of the first frame is read here: PIL's open() is lazy.
        self.width, self.height = self._open(self.files[0]).size
        self.num_frames = len(self.files)

    @staticmethod
    def _open(file: Path) -> Image.Image:
        try:
            return Image.open(file)
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"unreadable image: {exc}", path=str(file)) from None

    def _load(self, file: Path) -> np.ndarray:
        img = self._open(file)
        try:
            with img:
                if img.size != (self.width, self.height):
                    raise InputError(f"frame size {img.size[0]}x{img.size[1]} differs from the "
                                     f"first frame's {self.width}x{self.height} "
                                     f"({self.files[0].name})", path=str(file))
                return np.array(img.convert("RGB"), dtype=np.uint8)  # [H, W, 3], writable copy
        except (OSError, SyntaxError, ValueError) as exc:  # truncated / corrupt pixel data
            raise InputError(f"unreadable image: {exc}", path=str(file)) from None

    def __iter__(self) -> Iterator[np.ndarray]:
        for file in self.files:
            yield self._load(file)

    def frame_stem(self, t: int) -> str:
        return self.files[t].stem


class VideoFileSource(VideoSource):
    """A video file decoded with PyAV (mp4, avi, webm, mkv, ...: whatever FFmpeg demuxes).

    Each ``iter()`` opens its own container so iteration can restart; decode errors mid-stream
    become :class:`InputError`. When the container states a frame count and decoding ends early
    (a truncated file), that is an error too rather than a silently shorter video.
    """

    def __init__(self, file: str | os.PathLike):
        import av  # imported here: only video files need FFmpeg

        self.path = str(file)
        self.name = Path(file).stem
        self._containers: list = []  # containers opened by live iterators, closed by close()
        container = self._open_container()
        try:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            self.width, self.height = int(ctx.width), int(ctx.height)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else 0.0
            self.num_frames = int(stream.frames) if stream.frames else None
        finally:
            container.close()
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"video stream has no frame size ({self.width}x{self.height})",
                             path=self.path)

    def _open_container(self):
        import av

        try:
            container = av.open(self.path, "r")
        except av.error.FFmpegError as exc:
            raise InputError(f"not a readable video: {_av_reason(exc)}", path=self.path) from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot open video: {exc}", path=self.path) from None
        if not container.streams.video:
            container.close()
            raise InputError("file has no video stream", path=self.path)
        return container

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        container = self._open_container()
        self._containers.append(container)
        t = 0
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-threaded decoding: same frames, faster
            try:
                for frame in container.decode(stream):
                    img = frame.to_ndarray(format="rgb24")  # [H, W, 3] uint8
                    if img.shape[:2] != (self.height, self.width):
                        raise InputError(f"frame size {img.shape[1]}x{img.shape[0]} differs from "
                                         f"the stream's {self.width}x{self.height}",
                                         path=self.path, record=f"frame {t}")
                    yield img
                    t += 1
            except av.error.FFmpegError as exc:
                raise InputError(f"decoding failed after {t} frames: {_av_reason(exc)}",
                                 path=self.path, record=f"frame {t}") from None
            if self.num_frames is not None and t < self.num_frames:
                raise InputError(f"decoded only {t} of the {self.num_frames} frames the container "
                                 f"declares (truncated file?)", path=self.path)
        finally:
            container.close()
            if container in self._containers:  # close() may have emptied the list already
                self._containers.remove(container)

    def close(self) -> None:
        for c in list(self._containers):
            c.close()
        self._containers.clear()


def _av_reason(exc: Exception) -> str:
    """PyAV's message without the errno prefix and the repeated file name."""
    return getattr(exc, "strerror", None) or str(exc)


def open_video(source: str | os.PathLike) -> VideoSource:
    """Open a video file or a folder of frames for lazy reading.

    Args:
        source: a video file PyAV can decode, or a folder of jpg/png frames (natural name order,
            fps :data:`DEFAULT_FOLDER_FPS`).

    Returns:
        a :class:`VideoSource`; iterate it for RGB uint8 ``[H, W, 3]`` frames.

    Raises:
        InputError: missing path, empty/corrupt/non-video file, folder without images.
    """
    path = Path(source)
    if not path.exists():
        raise InputError("no such file or folder", path=str(path))
    if path.is_dir():
        return FrameFolderSource(path)
    if path.stat().st_size == 0:
        raise InputError("file is empty", path=str(path))
    return VideoFileSource(path)
