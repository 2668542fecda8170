"""Video IO: lazy readers and the atomic H.264 writer (rendering: ``test_video_render.py``,
``tubelet show``: ``test_video_show.py``). Frames are tiny (64x96) except the DAVIS reader test.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from tests.video_clips import H, W, save_pngs, smooth_frames, write_mp4
from tubelet.errors import InputError
from tubelet.video import VideoWriter, open_video


# ----------------------------------------------------------------------------------- reader
def test_davis_folder_is_read_lazily(monkeypatch, davis_root):
    dog = davis_root / "JPEGImages" / "480p" / "dog"  # 60 frames, 854x480
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open",
                        lambda fp, *a, **k: opened.append(fp) or real_open(fp, *a, **k))
    src = open_video(dog)
    assert (src.num_frames, src.width, src.height, src.name, src.fps) == (60, 854, 480, "dog", 24.0)
    it = iter(src)
    first = next(it)
    next(it)
    assert len(opened) <= 3  # the header probe + two frames, not the whole folder
    ref = np.array(real_open(dog / "00000.jpg").convert("RGB"))
    np.testing.assert_array_equal(first, ref)

    frame_bytes = 480 * 854 * 3
    tracemalloc.start()
    count = 0
    for frame in src:  # a fresh pass over all 60 frames
        assert frame.shape == (480, 854, 3) and frame.dtype == np.uint8
        count += 1
        del frame
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 60
    assert peak < 4 * frame_bytes, f"peak {peak / 1e6:.1f} MB: frames are being accumulated"
    src.close()


def test_folder_natural_order_and_non_images_ignored(tmp_path):
    names = ["f10.png", "f2.png", "f1.png", "F3.jpg"]  # natural order: f1, f2, F3, f10
    frames = [np.full((H, W, 3), v, np.uint8) for v in (100, 20, 10, 30)]
    save_pngs(tmp_path, frames, names)
    (tmp_path / "notes.txt").write_text("not a frame")
    with open_video(tmp_path) as src:
        got = [int(np.median(f)) for f in src]
        assert [src.frame_stem(t) for t in range(4)] == ["f1", "f2", "F3", "f10"]
    assert got[0] == 10 and got[1] == 20 and abs(got[2] - 30) <= 2 and got[3] == 100


def test_folder_frame_of_other_size_names_the_file(tmp_path):
    save_pngs(tmp_path, [np.zeros((H, W, 3), np.uint8)] * 2 + [np.zeros((H, W + 2, 3), np.uint8)])
    src = open_video(tmp_path)
    with pytest.raises(InputError, match="00002.png") as exc:
        list(src)
    assert "98x64" in str(exc.value)


def test_folder_corrupt_frame_names_the_file(tmp_path):
    save_pngs(tmp_path, [np.zeros((H, W, 3), np.uint8)] * 2)
    data = (tmp_path / "00001.png").read_bytes()
    (tmp_path / "00001.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="00001.png"):
        list(open_video(tmp_path))


@pytest.mark.parametrize("content", [None, "text"])
def test_folder_without_images(tmp_path, content):
    if content:
        (tmp_path / "a.txt").write_text(content)
    with pytest.raises(InputError, match=str(tmp_path)):
        open_video(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="nope.mp4"):
        open_video(tmp_path / "nope.mp4")


@pytest.mark.parametrize("kind", ["empty", "random", "text", "truncated", "truncated_faststart"])
def test_bad_video_files_raise_input_error(tmp_path, kind):
    p = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "random":
        p.write_bytes(np.random.default_rng(0).bytes(20000))
    elif kind == "text":
        p.write_text("this is not a video\n" * 50)
    else:
        good = tmp_path / "good.mp4"
        write_mp4(good, smooth_frames(30), faststart=kind.endswith("faststart"))
        data = good.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=f"{kind}.mp4"):
        with open_video(p) as src:  # some fail on open, faststart ones only mid-decode
            for _ in src:
                pass


# ----------------------------------------------------------------------------------- writer
def test_writer_roundtrip(tmp_path):
    frames = smooth_frames(12)
    out = tmp_path / "sub" / "v.mp4"
    with VideoWriter(out, fps=24, width=W, height=H) as w:
        for f in frames:
            w.write(f)
    assert w.num_written == 12
    with open_video(out) as src:
        assert (src.width, src.height, src.num_frames) == (W, H, 12)
        assert src.fps == pytest.approx(24.0)
        got = list(src)
    assert len(got) == 12
    for t, g in enumerate(got):
        assert g.shape == (H, W, 3) and g.dtype == np.uint8
        err = np.abs(g.astype(int) - frames[t].astype(int))
        assert err.mean() < 3.0, (t, err.mean())
        # frame order kept: frame t is nearer its own source than any other frame
        dists = [np.abs(g.astype(int) - f.astype(int)).mean() for f in frames]
        assert int(np.argmin(dists)) == t
    assert [p.name for p in out.parent.iterdir()] == ["v.mp4"]  # no temp file left


def test_writer_pads_odd_sizes_by_edge_replication(tmp_path):
    h, w = 33, 47
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([x * 5, y * 7, np.full_like(x, 128)], -1).astype(np.uint8)
    with VideoWriter(tmp_path / "odd.mp4", fps=10, width=w, height=h) as wr:
        assert (wr.out_height, wr.out_width) == (34, 48)
        wr.write(frame)
        wr.write(frame)
    got = list(open_video(tmp_path / "odd.mp4"))
    assert len(got) == 2 and got[0].shape == (34, 48, 3)
    ref = np.pad(frame, ((0, 1), (0, 1), (0, 0)), mode="edge").astype(int)
    assert np.abs(got[0].astype(int) - ref).mean() < 3.0


def test_writer_leaves_nothing_on_exception(tmp_path):
    out = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, fps=24, width=W, height=H) as w:
            w.write(smooth_frames(1)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # an existing file at the destination is left untouched
    out.write_bytes(b"old")
    with pytest.raises(ValueError):
        with VideoWriter(out, fps=24, width=W, height=H) as w:
            w.write(np.zeros((H + 1, W, 3), np.uint8))  # wrong size
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
