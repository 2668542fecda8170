"""Atomic H.264 MP4 writing with PyAV.

Frames go to a temporary file beside the destination, renamed into place only when the writer
closes without an exception; on an exception the temporary file is deleted and nothing appears
at the destination (see :func:`tubelet.utils.fileio.atomic_path`).
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from tubelet.utils.fileio import atomic_path


def even_size(height: int, width: int) -> tuple[int, int]:
    """Frame size written for an ``H x W`` input: each odd side is padded up by one pixel,
    because yuv420p stores chroma at half resolution and x264 rejects odd sizes."""
    return height + height % 2, width + width % 2


class VideoWriter:
    """Write RGB uint8 frames ``[H, W, 3]`` to an H.264 (yuv420p) MP4 file.

    Odd sizes: yuv420p needs an even width and height, so an odd ``width``/``height`` is padded
    by one column on the right / one row at the bottom that repeats the last column/row
    (edge replication: no black line, no pixel of the input lost). The written size is
    ``(out_height, out_width) = even_size(height, width)``.

    The container is always MP4, whatever the suffix of ``path``.

    Args:
        path: destination file; its folder is created if needed.
        fps: frame rate (> 0); non-integer rates are stored as a fraction (29.97 -> 2997/100).
        width, height: size W, H of the frames passed to :meth:`write`.
        codec: FFmpeg encoder name ("libx264" = H.264).
        crf: x264 constant rate factor (0 lossless .. 51; 18 is visually lossless, the default
            23 visibly blurs thin mask contours).

    Usage::

        with VideoWriter("out.mp4", fps=24, width=W, height=H) as w:
            for frame in frames:
                w.write(frame)
    """

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int,
                 codec: str = "libx264", crf: int = 18):
        import av

        if not fps or fps <= 0:
            raise ValueError(f"VideoWriter needs fps > 0, got {fps}")
        if width <= 0 or height <= 0:
            raise ValueError(f"VideoWriter needs a positive size, got {width}x{height}")
        self.path = Path(path)
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.out_height, self.out_width = even_size(self.height, self.width)
        self.num_written = 0
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path, suffix=".mp4"))
        self._container = None
        try:
            self._container = av.open(str(self._tmp), "w", format="mp4")
            self._stream = self._container.add_stream(
                codec, rate=Fraction(self.fps).limit_denominator(1001))
            self._stream.width, self._stream.height = self.out_width, self.out_height
            self._stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self._stream.options = {"crf": str(int(crf))}
        except BaseException:
            self.abort()
            raise

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame ``[H, W, 3]`` (the size given to the constructor)."""
        import av

        if self._container is None:
            raise RuntimeError(f"VideoWriter for {self.path} is closed")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"VideoWriter expects uint8 frames [{self.height}, {self.width}, 3], "
                             f"got {frame.dtype} {list(frame.shape)}")
        if (self.out_height, self.out_width) != (self.height, self.width):
            pad = ((0, self.out_height - self.height), (0, self.out_width - self.width), (0, 0))
            frame = np.pad(frame, pad, mode="edge")  # [H', W', 3], H' and W' even
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):  # PyAV converts rgb24 -> yuv420p here
            self._container.mux(packet)
        self.num_written += 1

    def close(self) -> None:
        """Flush the encoder and move the file into place."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():  # flush delayed (B-)frames
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException:
            self.abort()
            raise
        self._stack.close()  # renames the temporary file onto self.path

    def abort(self) -> None:
        """Stop without writing: drop the temporary file; nothing appears at the destination."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        # Throwing into atomic_path's generator makes it skip the rename and delete the file.
        err = RuntimeError("VideoWriter aborted")
        with contextlib.suppress(RuntimeError):
            self._stack.__exit__(RuntimeError, err, None)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        # An abandoned writer (never closed) must not leave its temporary file behind.
        if getattr(self, "_container", None) is not None:
            self.abort()
