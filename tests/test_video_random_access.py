"""Random access to videos: ``len(video)``, ``video[t]`` through a bounded LRU, ``as_video``.

Frame t of every test video is a flat grey level 5*t (H.264 keeps a flat frame within a couple of
levels, and neighbours differ by 5), so the index a frame came from can be read off its pixels.
Sequential iteration is the reference: random reads must return exactly the same pixels (H.264
decoding is bit-exact whether it starts from the first frame or from a keyframe after a seek).
Decode/seek counts are derived by hand from the GOP layout (a keyframe every 8 frames).
"""
from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from PIL import Image

from tubelet.errors import InputError
from tubelet.video import (ArrayVideo, DatasetVideo, FrameCache, FrameFolderSource,
                           IterableVideo, VideoFileSource, as_video, open_video)

H, W, GOP = 48, 64, 8


def grey(t: int, h: int = H, w: int = W) -> np.ndarray:
    return np.full((h, w, 3), 5 * t % 256, np.uint8)  # distinct for t < 52


def write_h264(path: Path, n: int, fmt: str = "mp4", h: int = H, w: int = W,
               texture: bool = False, faststart: bool = False, open_gop: bool = False) -> Path:
    """n frames, grey level 5*t (plus a fixed texture), a keyframe every GOP frames exactly,
    x264's default B-frames (so decode order differs from presentation order). An open GOP puts
    B-frames that reference the previous GOP after each keyframe in decode order."""
    c = av.open(str(path), "w", format=fmt,
                options={"movflags": "faststart"} if faststart else {})
    s = c.add_stream("libx264", rate=Fraction(24))
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    s.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0",
                 "x264-params": f"open-gop={int(open_gop)}"}
    tex = np.random.default_rng(0).integers(0, 50, (h, w, 1)) if texture else 0
    for t in range(n):
        f = (grey(t, h, w) + tex).astype(np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def save_pngs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{t:05d}.png" for t in range(n)]
    for t, f in enumerate(files):
        Image.fromarray(grey(t)).save(f)
    return files


def orders(n: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(1)
    return {"forwards": list(range(n)), "backwards": list(range(n - 1, -1, -1)),
            "random": [int(i) for i in np.concatenate([rng.permutation(n),
                                                       rng.integers(0, n, n)])],
            "negative": list(range(-1, -n - 1, -1))}


def check_against_iteration(video, n: int, exact: bool = True) -> None:
    seq = list(video)
    assert len(seq) == n == len(video)
    for t, f in enumerate(seq):  # the reference itself is right: frame t is grey 5t
        assert f.shape == (H, W, 3) and abs(float(f.mean()) - 5 * t) <= 2.5, (t, f.mean())
    for name, order in orders(n).items():
        for t in order:
            got = video[t]
            assert got.shape == (H, W, 3) and got.dtype == np.uint8
            np.testing.assert_array_equal(got, seq[t], err_msg=f"{name} order, frame {t}")
            if video.cache is not None:
                assert len(video.cache) <= video.cache.capacity


# ----------------------------------------------------------------------------------- cache
def test_frame_cache_is_lru_and_bounded():
    c = FrameCache(2)
    for t in range(3):
        c.put(t, grey(t))
    assert c.indices() == [1, 2] and 0 not in c
    assert c.get(1) is not None  # 1 becomes the most recent; 2 is now the oldest
    c.put(3, grey(3))
    assert c.indices() == [1, 3] and c.get(2) is None
    assert c.nbytes == 2 * H * W * 3 and len(c) == 2
    with pytest.raises(ValueError, match="cache_size=0"):
        FrameCache(0)


# ------------------------------------------------------------------------------ video file
# raw .h264 (an elementary stream) has no timestamps: frames are found by counting from the start
@pytest.mark.parametrize("fmt", ["mp4", "matroska", "mp4-open-gop", "h264"])
@pytest.mark.parametrize("cache_size", [1, 5])
def test_file_random_access_matches_iteration(tmp_path, fmt, cache_size):
    container = fmt.split("-")[0]
    ext = {"mp4": "mp4", "matroska": "mkv", "h264": "h264"}[container]
    p = write_h264(tmp_path / f"v.{ext}", 40, container, open_gop="open" in fmt)
    with open_video(p, cache_size=cache_size) as v:
        assert isinstance(v, VideoFileSource) and v.cache.capacity == cache_size
        check_against_iteration(v, 40)
        assert (v.index.pts is None) == (fmt == "h264")


def test_file_decode_and_seek_counts(tmp_path):
    p = write_h264(tmp_path / "v.mp4", 40)
    v = open_video(p, cache_size=4)
    assert v.build_index().keys == [0, 8, 16, 24, 32]
    for t in range(40):  # forwards: one seek, then the decoder just continues
        v[t]
    assert (v.seeks, v.frames_decoded) == (1, 40)
    v[22]  # behind the decoder (past frame 39): seek to its keyframe 16
    assert (v.seeks, v.frames_decoded) == (2, 40 + 7)  # decodes 16..22
    v[23]  # right after the decoder's last frame: no seek
    assert (v.seeks, v.frames_decoded) == (2, 48)

    v = open_video(p, cache_size=4)
    for t in range(39, -1, -1):
        v[t]
    # Per GOP [k, k+7], read backwards with 4 cached frames: t=k+7 decodes k..k+7 (8 frames,
    # keeps k+4..k+7), hits k+6..k+4, then t=k+3 decodes k..k+3 again (4): 12 decodes, 2 seeks.
    assert (v.seeks, v.frames_decoded) == (10, 5 * 12)
    v = open_video(p, cache_size=16)
    for t in range(39, -1, -1):
        v[t]
    assert (v.seeks, v.frames_decoded) == (5, 40)  # a whole GOP fits: each frame decoded once


def test_file_cache_bound_reading_100_frames_backwards(tmp_path):
    h, w, n, size = 144, 192, 100, 8
    p = write_h264(tmp_path / "v.mp4", n, h=h, w=w)
    v = open_video(p, cache_size=size)
    v.build_index()
    frame_bytes = h * w * 3
    tracemalloc.start()
    try:
        for t in range(n - 1, -1, -1):
            f = v[t]
            assert abs(float(f.mean()) - 5 * t % 256) <= 2.5
            assert len(v.cache) <= size
            del f
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(v.cache) == size and v.cache.nbytes == size * frame_bytes
    # the cache, the frame being converted, the copy handed out, numpy's 64 KB reduction buffer
    # for f.mean() and a little bookkeeping (measured ~9.9 frames); 100 frames if unbounded
    assert peak < (size + 3) * frame_bytes, f"peak {peak / frame_bytes:.2f} frames"


def test_len_with_and_without_the_container_count(tmp_path, monkeypatch):
    mp4 = open_video(write_h264(tmp_path / "v.mp4", 40))
    assert mp4.num_frames == 40 and len(mp4) == 40
    assert mp4.index is None  # the container said it: nothing demuxed

    mkv = open_video(write_h264(tmp_path / "v.mkv", 37, "matroska"))
    assert mkv.num_frames is None  # matroska does not store a frame count
    opened = []
    real = mkv._open_container
    monkeypatch.setattr(mkv, "_open_container", lambda: opened.append(1) or real())
    assert len(mkv) == 37 and mkv.num_frames == 37
    assert len(mkv) == 37 and len(opened) == 1  # counted once, by demuxing
    assert mkv.frames_decoded == 0  # ... without decoding
    assert len(list(mkv)) == 37


def test_index_errors_and_types(tmp_path):
    v = open_video(write_h264(tmp_path / "v.mp4", 10))
    for bad in (10, -11, 1000):
        with pytest.raises(IndexError, match=f"{bad} out of range .* 10 frames"):
            v[bad]
    with pytest.raises(TypeError):
        v[1.0]
    with pytest.raises(TypeError, match="one int"):
        v[0:2]
    np.testing.assert_array_equal(v[np.int64(-10)], v[0])
    assert bool(v) and v.size == (H, W)


def test_truncated_file_raises_and_leaves_the_source_usable(tmp_path):
    good = write_h264(tmp_path / "good.mp4", 40, texture=True, faststart=True)
    ref = list(open_video(good))
    data = good.read_bytes()
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data[: int(len(data) * 0.6)])  # the index is whole, the frames are not
    v = open_video(bad, cache_size=2)
    assert len(v) == 40  # what the container declares
    with pytest.raises(InputError, match="cut.mp4"):
        v[39]
    np.testing.assert_array_equal(v[1], ref[1])
    with pytest.raises(InputError, match="cut.mp4"):
        v[-2]
    np.testing.assert_array_equal(v[0], ref[0])
    np.testing.assert_array_equal(v[2], ref[2])


def test_decode_error_mid_read_drops_the_decoder(tmp_path, monkeypatch):
    v = open_video(write_h264(tmp_path / "v.mp4", 24), cache_size=2)
    ref = list(v)
    real, failed = v._rgb, []

    def flaky(frame, t):
        if t == 5 and not failed:
            failed.append(t)
            raise av.error.InvalidDataError(1094995529, "Invalid data found")
        return real(frame, t)

    monkeypatch.setattr(v, "_rgb", flaky)
    np.testing.assert_array_equal(v[3], ref[3])
    with pytest.raises(InputError, match=r"v\.mp4: frame 5: decoding frame 5 failed"):
        v[5]
    assert v._rc is None  # the half-used decoder is gone; the next read starts afresh
    for t in (5, 6, 4, 20):
        np.testing.assert_array_equal(v[t], ref[t])
    v.close()
    np.testing.assert_array_equal(v[7], ref[7])  # reads after close() reopen the file


# ---------------------------------------------------------------------------- frame folders
def test_folder_random_access_matches_iteration(tmp_path):
    save_pngs(tmp_path, 30)
    v = open_video(tmp_path, cache_size=3, fps=6)
    assert isinstance(v, FrameFolderSource) and v.fps == 6.0
    check_against_iteration(v, 30)
    for t in range(29, -1, -1):
        np.testing.assert_array_equal(v[t], grey(t))  # PNG is lossless: exact grey levels


def test_folder_cache_bound_and_bad_frames(tmp_path):
    save_pngs(tmp_path, 100)
    Image.fromarray(np.zeros((H, W + 2, 3), np.uint8)).save(tmp_path / "00003.png")
    data = (tmp_path / "00007.png").read_bytes()
    (tmp_path / "00007.png").write_bytes(data[: len(data) // 3])
    v = open_video(tmp_path, cache_size=5)
    for t in range(99, -1, -1):
        if t in (3, 7):
            continue
        np.testing.assert_array_equal(v[t], grey(t))
        assert len(v.cache) <= 5
    with pytest.raises(InputError, match="00003.png") as exc:
        v[3]
    assert "66x48" in str(exc.value)  # W x H, as folder iteration words it
    with pytest.raises(InputError, match="00007.png"):
        v[-93]
    np.testing.assert_array_equal(v[4], grey(4))


# -------------------------------------------------------------------------- dataset videos
def test_dataset_video_random_access_and_errors(tmp_path):
    files = save_pngs(tmp_path / "JPEGImages" / "vid", 20)
    order = files[::-1]  # an explicit list is kept as given: frame t is files[19 - t]
    v = DatasetVideo(order, (H, W), cache_size=4)
    assert (len(v), v.fps, v.size, v.name) == (20, 6.0, (H, W), "vid")
    seq = list(v)
    for name, ts in orders(20).items():
        for t in ts:
            np.testing.assert_array_equal(v[t], seq[t], err_msg=name)
            np.testing.assert_array_equal(v[t], grey(19 - t % 20))
    assert v.frame_stem(0) == "00019"

    rec = SimpleNamespace(file_names=[f"vid/{t:05d}.png" for t in range(20)], height=H, width=W,
                          name="vid", length=20)
    r = DatasetVideo.from_record(rec, tmp_path / "JPEGImages", cache_size=2)
    np.testing.assert_array_equal(r[-1], grey(19))

    wrong = DatasetVideo(files, (H, W - 2))
    with pytest.raises(InputError, match="00002.png") as exc:
        wrong[2]
    assert "frame size 48x64 differs from video size 48x62" in str(exc.value)
    with pytest.raises(InputError, match="00000.png"):
        next(iter(wrong))
    missing = DatasetVideo(files + [tmp_path / "gone.png"], (H, W))
    np.testing.assert_array_equal(missing[0], grey(0))
    with pytest.raises(InputError, match="gone.png.*not found"):
        missing[20]
    with pytest.raises(InputError):
        DatasetVideo([], (H, W))


# ---------------------------------------------------------------------- arrays and as_video
def test_array_video():
    frames = [grey(t) for t in range(12)]
    for src in (frames, np.stack(frames)):
        v = ArrayVideo(src, fps=10)
        assert (len(v), v.fps, v.size, v.num_frames) == (12, 10.0, (H, W), 12)
        check_against_iteration(v, 12)
        got = v[3]
        got[:] = 0  # a copy: the caller's frames are untouched
        np.testing.assert_array_equal(v[3], grey(3))
    with pytest.raises(InputError, match="frame 1"):
        ArrayVideo([grey(0), grey(1, H, W + 2)])
    with pytest.raises(InputError, match="uint8"):
        ArrayVideo(np.zeros((2, H, W, 3), np.float32))
    with pytest.raises(InputError):
        ArrayVideo([])


def test_as_video_on_each_input_kind(tmp_path):
    frames = [grey(t) for t in range(5)]
    v = ArrayVideo(frames)
    assert as_video(v) is v
    assert isinstance(as_video(frames), ArrayVideo) and isinstance(as_video(tuple(frames)),
                                                                  ArrayVideo)
    stacked = as_video(np.stack(frames), fps=6)
    assert isinstance(stacked, ArrayVideo) and stacked.fps == 6.0
    np.testing.assert_array_equal(as_video(torch.from_numpy(np.stack(frames)))[4], grey(4))

    save_pngs(tmp_path / "f", 5)
    folder = as_video(str(tmp_path / "f"))
    assert isinstance(folder, FrameFolderSource) and len(folder) == 5
    file = as_video(write_h264(tmp_path / "v.mp4", 9), cache_size=3)
    assert isinstance(file, VideoFileSource) and file.cache.capacity == 3 and len(file) == 9

    gen = as_video(f for f in frames)
    assert isinstance(gen, IterableVideo)
    assert gen.size == (H, W)  # looks at the first frame, which iteration still yields
    got = list(gen)
    assert len(got) == 5 and all((g == f).all() for g, f in zip(got, frames))
    msg = "random access needs a video file, a frame folder or a list of frames; got a generator"
    with pytest.raises(TypeError, match=msg):
        len(gen)
    with pytest.raises(TypeError, match=msg):
        gen[0]
    with pytest.raises(RuntimeError, match="already iterated"):
        list(gen)
    reiterable = as_video(range(3))  # re-iterable: each pass starts again
    assert list(reiterable) == [0, 1, 2] == list(reiterable)
    with pytest.raises(TypeError, match="cannot read a video from int"):
        as_video(3)
