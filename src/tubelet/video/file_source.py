"""A video file read with PyAV: sequential iteration and random access by keyframe seeking.

Random access (``video[t]``, frame ``t`` = the t-th frame in presentation order):

1. One demuxing pass (packets only, no decoding) builds a :class:`FrameIndex`: every frame's pts
   sorted into presentation order, and which frames are keyframes.
2. A read of frame ``t`` that is not cached seeks to the last keyframe ``k <= t``
   (``container.seek(pts_k, backward=True, any_frame=False)``) and decodes forwards to ``t``,
   caching on the way the frames that will survive in the LRU (those within ``cache_size`` of
   ``t``; older ones would be evicted before ``t`` arrives, so they are not even converted to RGB).
   Reading backwards frame by frame therefore decodes about one GOP per ``cache_size`` frames.
3. A read at or just after the decoder's position (no keyframe in between) continues decoding
   without a seek, so ``video[0], video[1], ...`` decodes each frame once.

Frames decoded after a seek with a pts before the keyframe's (the leading pictures of an open GOP,
which reference the previous GOP) are never trusted. When a seek lands after the target (a demuxer
that seeks on dts, a missing index entry), the previous keyframe is tried, then the first frame.
Streams whose packets lack unique timestamps (raw elementary streams) are read by counting decoded
frames from the start instead.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from tubelet.errors import InputError
from tubelet.video.cache import DEFAULT_CACHE_SIZE, FrameCache
from tubelet.video.source import VideoSource


@dataclass
class FrameIndex:
    """Where each frame of a video stream sits, from one demuxing pass.

    count: packets that carry a frame (the frames a full decode yields).
    pts: ``[count]`` pts of frame ``t`` in presentation order (stream time base), or None when the
        packets lack unique timestamps; then frames are located by counting from the start.
    keys: ascending frame indices of keyframes (where a seek can land); ``[0]`` without pts.
    error: why demuxing stopped early (a corrupt or truncated file), else None.
    """
    count: int
    pts: list[int] | None
    keys: list[int]
    error: str | None = None

    def key_at_or_before(self, t: int) -> int:
        """Index of the last keyframe ``<= t`` (0 when there is none)."""
        i = bisect.bisect_right(self.keys, t) - 1
        return self.keys[i] if i >= 0 else 0

    def seek_starts(self, t: int) -> list[int]:
        """Frames to decode from for target ``t``, in order of preference: the last keyframe
        ``<= t``, the keyframe before it, the first frame."""
        k = self.key_at_or_before(t)
        prev = self.key_at_or_before(k - 1) if k > 0 else 0
        return list(dict.fromkeys([k, prev, 0]))


class VideoFileSource(VideoSource):
    """A video file decoded with PyAV (mp4, avi, webm, mkv, ...: whatever FFmpeg demuxes).

    Each ``iter()`` opens its own container so iteration can restart; decode errors mid-stream
    become :class:`InputError`. When the container states a frame count and decoding ends early
    (a truncated file), that is an error too rather than a silently shorter video.

    ``len()`` is the container's frame count, or, when it does not state one, the packets of one
    demuxing pass (counted once, then kept in ``num_frames``). ``video[t]`` seeks and decodes as
    the module docstring describes, through ``cache`` (``cache_size`` frames). ``frames_decoded``
    and ``seeks`` count the random-access decoder's work (iteration is not counted).
    """

    def __init__(self, file: str | os.PathLike, cache_size: int = DEFAULT_CACHE_SIZE,
                 fps: float | None = None):
        self.path = str(file)
        self.name = Path(file).stem
        self.cache = FrameCache(cache_size)
        self._containers: list = []  # containers opened by live iterators, closed by close()
        container = self._open_container()
        try:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            self.width, self.height = int(ctx.width), int(ctx.height)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(fps) if fps else (float(rate) if rate else 0.0)
            self.num_frames = int(stream.frames) if stream.frames else None
        finally:
            container.close()
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"video stream has no frame size ({self.width}x{self.height})",
                             path=self.path)
        self.index: FrameIndex | None = None  # built by the first random read (or len())
        self._t_of_pts: dict[int, int] = {}
        self.frames_decoded = 0
        self.seeks = 0
        # The random-access decoder: its container, frame generator, the index its next frame
        # should have, the first index it may trust since the last seek, and (counting mode) the
        # index of the next frame out of the decoder.
        self._rc = None
        self._frames: Iterator | None = None
        self._next_t: int | None = None
        self._trusted_from = 0
        self._counter = 0

    # ------------------------------------------------------------------------------- opening
    def _open_container(self):
        import av  # imported here: only video files need FFmpeg

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

    def _rgb(self, frame, t: int) -> np.ndarray:
        img = frame.to_ndarray(format="rgb24")  # [H, W, 3] uint8
        if img.shape[:2] != (self.height, self.width):
            raise InputError(f"frame size {img.shape[1]}x{img.shape[0]} differs from the "
                             f"stream's {self.width}x{self.height}", path=self.path,
                             record=f"frame {t}")
        return img

    # ------------------------------------------------------------------------------ iteration
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
                    yield self._rgb(frame, t)
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

    # ------------------------------------------------------------------------------- indexing
    def __len__(self) -> int:
        if self.num_frames is None:
            index = self.build_index()
            if index.error:
                raise InputError(f"cannot count the frames: demuxing stopped after "
                                 f"{index.count} frames: {index.error}", path=self.path)
            self.num_frames = index.count
        return self.num_frames

    def build_index(self) -> FrameIndex:
        """The :class:`FrameIndex` (one demuxing pass, no decoding; built once, then kept)."""
        if self.index is not None:
            return self.index
        import av

        container = self._open_container()
        pts: list[int | None] = []
        key_pts: list[int | None] = []
        error = None
        try:
            stream = container.streams.video[0]
            try:
                for packet in container.demux(stream):
                    # The empty packet at the end only flushes the decoder; a discarded packet
                    # (before an edit list's start) never becomes an output frame.
                    if packet.size == 0 or getattr(packet, "is_discard", False):
                        continue
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        key_pts.append(packet.pts)
            except av.error.FFmpegError as exc:
                error = _av_reason(exc)
        finally:
            container.close()
        if None in pts or len(set(pts)) != len(pts):
            self.index = FrameIndex(len(pts), None, [0], error)  # locate frames by counting
        else:
            order = sorted(pts)  # presentation order
            self._t_of_pts = {p: t for t, p in enumerate(order)}
            self.index = FrameIndex(len(order), order,
                                    sorted(self._t_of_pts[p] for p in key_pts), error)
        return self.index

    # -------------------------------------------------------------------------- random access
    def _read(self, t: int) -> np.ndarray:
        import av

        index = self.build_index()
        if t >= index.count:
            why = f" ({index.error})" if index.error else ""
            raise InputError(f"frame {t} is not in the file: demuxing found {index.count} of the "
                             f"{len(self)} frames the container declares{why} (truncated file?)",
                             path=self.path, record=f"frame {t}")
        try:
            frame = None
            # Continue without a seek when no keyframe lies between the decoder and t.
            if (self._frames is not None and self._next_t is not None
                    and index.key_at_or_before(t) <= self._next_t <= t):
                frame = self._decode_until(t)
            starts = index.seek_starts(t)
            for start in starts:
                if frame is not None:
                    break
                self._start_at(start)
                frame = self._decode_until(t)
            if frame is None:
                raise InputError(f"frame {t} could not be decoded (decoding from frames {starts} "
                                 f"never produced it)", path=self.path, record=f"frame {t}")
            return frame
        except av.error.FFmpegError as exc:
            self._drop_decoder()
            raise InputError(f"decoding frame {t} failed: {_av_reason(exc)}", path=self.path,
                             record=f"frame {t}") from None
        except BaseException:
            self._drop_decoder()  # never leave a half-used decoder for the next read
            raise

    def _start_at(self, start: int) -> None:
        """Position the random-access decoder so that it yields frames from ``start`` on."""
        counting = self.index.pts is None
        if self._rc is None or counting:  # without timestamps, "seeking" is reopening
            self._drop_decoder()
            self._rc = self._open_container()
            self._rc.streams.video[0].thread_type = "AUTO"
        stream = self._rc.streams.video[0]
        if not counting:
            self._rc.seek(self.index.pts[start], stream=stream, backward=True, any_frame=False)
        self._frames = self._rc.decode(stream)  # a fresh generator after every seek
        self._next_t, self._counter = None, 0
        self._trusted_from = start
        self.seeks += 1

    def _decode_until(self, t: int) -> np.ndarray | None:
        """Decode forwards to frame ``t`` and return it, caching the frames on the way that the
        LRU will still hold when ``t`` is in; None when the decoder passes ``t`` or ends."""
        keep_from = t - self.cache.capacity + 1  # older frames would be evicted before t arrives
        for frame in self._frames:
            self.frames_decoded += 1
            if self.index.pts is None:
                i, self._counter = self._counter, self._counter + 1
            else:
                i = self._t_of_pts.get(frame.pts)
            if i is None or i < self._trusted_from:
                continue  # unknown pts, or a leading picture of an open GOP
            self._next_t = i + 1
            if i > t:
                return None  # the seek landed after t, or t's frame was dropped
            if i >= keep_from:
                # A copy: to_ndarray's array is a view that keeps PyAV's frame buffer alive
                # outside numpy's (and tracemalloc's) accounting; cached frames own their pixels.
                img = np.array(self._rgb(frame, i))  # [H, W, 3]
                if i == t:
                    return img
                self.cache.put(i, img)
        self._frames, self._next_t = None, None  # end of stream
        return None

    def _drop_decoder(self) -> None:
        if self._rc is not None:
            try:
                self._rc.close()
            except Exception:  # closing a container that already failed must not mask the error
                pass
        self._rc, self._frames, self._next_t = None, None, None

    def close(self) -> None:
        for c in list(self._containers):
            c.close()
        self._containers.clear()
        self._drop_decoder()
        super().close()


def _av_reason(exc: Exception) -> str:
    """PyAV's message without the errno prefix and the repeated file name."""
    return getattr(exc, "strerror", None) or str(exc)
