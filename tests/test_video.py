"""Video IO (lazy readers, atomic H.264 writer), overlay rendering and ``tubelet show``.

Expected pixels come from the documented formulas evaluated here by hand (blend, painter's order,
ids), never from the code under test. Frames are tiny (64x96) except the DAVIS reader test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tubelet.cli.main import main
from tubelet.errors import InputError
from tubelet.structures import rle as rle_ops
from tubelet.structures.instances import VideoInstances
from tubelet.structures.rle import encode
from tubelet.video import (VideoSource, VideoWriter, color_for_track, draw_overlay, id_png,
                           open_video, render_video)

H, W = 64, 96


def smooth_frames(t_count: int, h: int = H, w: int = W) -> list[np.ndarray]:
    """Spatially smooth frames (H.264 keeps them within a few levels), distinct per frame."""
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for t in range(t_count):
        f = np.stack([(2 * x + 10 * t) % 256, (3 * y + 20) % 256,
                      np.full_like(x, (40 * t + 30) % 256)], axis=-1)
        out.append(f.astype(np.uint8))
    return out


def save_pngs(folder: Path, frames: list[np.ndarray], names: list[str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / (names[t] if names else f"{t:05d}.png"))


def write_mp4(path: Path, frames: list[np.ndarray], faststart: bool = False) -> None:
    """Reference mp4 written with PyAV directly (faststart puts the index before the data)."""
    c = av.open(str(path), "w", format="mp4",
                options={"movflags": "faststart"} if faststart else {})
    s = c.add_stream("libx264", rate=Fraction(24))
    s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()


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


# ----------------------------------------------------------------------------------- render
def test_track_colours_stable_and_distinct():
    cols = [color_for_track(i) for i in range(1, 65)]
    assert cols == [color_for_track(i) for i in range(1, 65)]
    assert len(set(cols)) == 64
    assert all(0 <= c <= 255 and isinstance(c, int) for col in cols for c in col)
    for a, b in zip(cols, cols[1:]):  # consecutive ids must not look alike
        assert sum(abs(p - q) for p, q in zip(a, b)) > 60


@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_overlay_pixels(alpha):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    orig = frame.copy()
    m = np.zeros((1, H, W), bool)
    m[0, 20:40, 30:70] = True
    out = draw_overlay(frame, m, [5], ["#5 dog 0.87"], alpha=alpha)
    np.testing.assert_array_equal(frame, orig)  # input untouched
    col = np.array(color_for_track(5), float)
    inner = (slice(21, 39), slice(31, 69))  # 1 px away from the contour
    expect = (1 - alpha) * frame[inner].astype(float) + alpha * col
    assert np.abs(out[inner].astype(float) - expect).max() <= 0.5 + 1e-6
    # contour: the 1-pixel border of the rectangle, in the full track colour
    border = m[0].copy()
    border[21:39, 31:69] = False
    assert (out[border] == col.astype(np.uint8)).all()
    # away from the mask and its label (the label sits above row 20): unchanged
    np.testing.assert_array_equal(out[41:], frame[41:])
    np.testing.assert_array_equal(out[:, :28], frame[:, :28])
    np.testing.assert_array_equal(out[:20, 90:], frame[:20, 90:])  # label text is < 60 px
    np.testing.assert_array_equal(out[:5], frame[:5])  # label text is < 15 px tall
    # the label box, drawn in the track colour, is just above the mask's top-left corner
    band = out[5:20, 30:90]
    assert (band == col.astype(np.uint8)).all(axis=-1).sum() > 20
    assert ((band != frame[5:20, 30:90]).any(axis=-1)).sum() > 100


def test_overlay_overlap_blends_once_with_the_top_instance():
    frame = np.full((H, W, 3), 100, np.uint8)
    a = np.zeros((H, W), bool)
    a[10:50, 10:50] = True
    b = np.zeros((H, W), bool)
    b[30:60, 30:80] = True
    out = draw_overlay(frame, np.stack([a, b]), [1, 2], None, alpha=0.5)
    cb = np.array(color_for_track(2), float)
    ca = np.array(color_for_track(1), float)
    np.testing.assert_allclose(out[40, 40], 0.5 * 100 + 0.5 * cb, atol=0.5)  # b only, once
    np.testing.assert_allclose(out[20, 20], 0.5 * 100 + 0.5 * ca, atol=0.5)


def test_label_is_clipped_inside_the_frame():
    frame = np.zeros((H, W, 3), np.uint8)
    m = np.zeros((1, H, W), bool)
    m[0, 0:10, 90:96] = True  # top-right corner: no room above, none to the right
    out = draw_overlay(frame, m, [7], ["#7 a long label"], alpha=0.5)
    col = np.array(color_for_track(7), np.uint8)
    label_px = (out[:, :88] == col).all(axis=-1)  # label box pixels left of the mask
    assert label_px.sum() > 20
    assert label_px[:2].any()  # placed at the top, inside the frame


def slow_id_map(masks, ids):
    """Reference: walk instances in order, later ones overwrite earlier ones."""
    out = np.zeros(masks.shape[1:], np.int64)
    for m, i in zip(masks, ids):
        for y in range(m.shape[0]):
            for x in range(m.shape[1]):
                if m[y, x]:
                    out[y, x] = i
    return out


def test_id_png_values_and_palette(tmp_path):
    rng = np.random.default_rng(2)
    masks = rng.random((3, 16, 24)) < 0.3
    ids = [3, 7, 250]
    img = id_png(masks, ids, 16, 24)
    assert img.mode == "P"
    np.testing.assert_array_equal(np.array(img), slow_id_map(masks, ids))
    pal = img.getpalette()
    assert pal[0:3] == [0, 0, 0] and pal[9:12] == list(color_for_track(3))
    img.save(tmp_path / "a.png")
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "a.png")), slow_id_map(masks, ids))
    assert (np.array(id_png(np.zeros((0, 16, 24), bool), [], 16, 24)) == 0).all()
    with pytest.raises(ValueError):
        id_png(masks[:1], [0], 16, 24)  # 0 is the background


def test_id_png_over_255_is_16_bit(tmp_path):
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4] = True
    masks[1, 4:] = True
    img = id_png(masks, [300, 1000], 8, 8)
    assert img.mode == "I;16"
    img.save(tmp_path / "b.png")
    got = np.array(Image.open(tmp_path / "b.png"))
    assert (got[:4] == 300).all() and (got[4:] == 1000).all()


class FailingSource(VideoSource):
    """Yields two frames, then fails like a corrupt file would."""
    path, name, fps, width, height, num_frames = "bad.mp4", "bad", 24.0, W, H, 5

    def __iter__(self):
        yield np.zeros((H, W, 3), np.uint8)
        yield np.zeros((H, W, 3), np.uint8)
        raise InputError("decoding failed", path="bad.mp4")


def test_render_video_streams_and_is_atomic(tmp_path, monkeypatch):
    save_pngs(tmp_path / "frames", smooth_frames(5))
    m = np.zeros((2, 5, H, W), bool)
    m[0, :, 5:20, 5:30] = True
    m[1, 2:, 30:60, 40:90] = True
    vi = VideoInstances.from_dense(m, [0.9, 0.4], [1, 2], track_ids=[1, 2])
    calls = []
    real = rle_ops.decode_many
    monkeypatch.setattr(rle_ops, "decode_many",
                        lambda r, h, w: calls.append(len(r)) or real(r, h, w))
    monkeypatch.setattr(VideoInstances, "to_dense", lambda *a: pytest.fail("dense video decoded"))
    out = tmp_path / "out" / "o.mp4"
    with open_video(tmp_path / "frames") as src:
        n = render_video(src, vi, {1: "dog"}, out_mp4=out, png_dir=tmp_path / "out" / "png",
                         progress=False)
    assert n == 5 and calls == [2] * 5  # one frame's 2 masks per call
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["o.mp4", "png"]
    for t in range(5):
        got = np.array(Image.open(tmp_path / "out" / "png" / f"{t:05d}.png"))
        np.testing.assert_array_equal(got, slow_id_map(m[[1, 0], t], [2, 1]))  # best on top

    bad_out = tmp_path / "bad"
    with pytest.raises(InputError, match="decoding failed"):
        render_video(FailingSource(), vi, {}, out_mp4=bad_out / "o.mp4",
                     png_dir=bad_out / "png", progress=False)
    assert list(bad_out.iterdir()) == []  # no mp4, no PNG folder, no temporaries


def test_render_video_rejects_size_or_length_mismatch(tmp_path):
    save_pngs(tmp_path / "frames", smooth_frames(3))
    src = open_video(tmp_path / "frames")
    small = VideoInstances.from_dense(np.ones((1, 3, 32, 48), bool), [1.0], [1], [1])
    with pytest.raises(InputError, match=r"32x48.*64x96|frames"):
        render_video(src, small, {}, out_mp4=tmp_path / "o.mp4", results_path="r.json")
    long = VideoInstances.from_dense(np.ones((1, 4, H, W), bool), [1.0], [1], [1])
    with pytest.raises(InputError, match="4 frames"):
        render_video(src, long, {}, out_mp4=tmp_path / "o.mp4", results_path="r.json")
    assert not (tmp_path / "o.mp4").exists()


# ----------------------------------------------------------------------------------- CLI
T = 5


def rect(y0, y1, x0, x1, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def clip(tmp_path):
    """5 PNG frames 64x96 and a results file: video 1 has 3 records, video 2 one."""
    save_pngs(tmp_path / "frames", smooth_frames(T))
    a, b, c = rect(5, 30, 5, 40), rect(20, 50, 30, 80), rect(40, 60, 0, 20)
    recs = [
        {"video_id": 1, "category_id": 2, "score": 0.5,  # -> track 2 (second best)
         "segmentations": [encode(b)] * T},
        {"video_id": 2, "category_id": 1, "score": 0.99, "segmentations": [encode(a)] * T},
        {"video_id": 1, "category_id": 1, "score": 0.9,  # -> track 1, drawn on top
         "segmentations": [encode(a)] * 3 + [None] * 2},
        {"video_id": 1, "category_id": 1, "score": 0.05,  # below --score-thr 0.1
         "segmentations": [encode(c)] * T},
    ]
    (tmp_path / "res.json").write_text(json.dumps(recs))
    return tmp_path, (a, b, c)


def run_show(capsys, *argv):
    rc = main(["show", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def test_show_end_to_end(clip, capsys):
    d, (a, b, c) = clip
    rc, out, err = run_show(capsys, d / "frames", d / "res.json", "--video-id", 1,
                            "--out", d / "o.mp4", "--png-dir", d / "png", "--score-thr", 0.1)
    assert rc == 0, err
    with open_video(d / "o.mp4") as src:
        assert (src.num_frames, src.width, src.height) == (T, W, H)
        frames = list(src)
    assert len(frames) == T
    for t in range(T):
        got = np.array(Image.open(d / "png" / f"{t:05d}.png"))
        expect = np.zeros((H, W), np.int64)
        expect[b] = 2
        if t < 3:
            expect[a] = 1  # the higher score is on top where they overlap
        np.testing.assert_array_equal(got, expect)
    # a track-2 pixel far from contours and labels: blended halfway toward its colour (H.264 aside)
    src_frame = smooth_frames(T)[4][40:48, 50:75].astype(float)
    blend = 0.5 * src_frame + 0.5 * np.array(color_for_track(2), float)
    assert np.abs(frames[4][40:48, 50:75].astype(float) - blend).mean() < 6


def test_show_ground_truth_file(clip, capsys):
    d, (a, b, c) = clip
    gt = {"videos": [{"id": 4, "width": W, "height": H, "length": T}],
          "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
          "annotations": [
              {"id": 10, "video_id": 4, "category_id": 2, "segmentations": [encode(c)] * T},
              {"id": 11, "video_id": 4, "category_id": 1,
               "segmentations": [None] + [encode(b)] * (T - 1)}]}
    (d / "gt.json").write_text(json.dumps(gt))
    rc, _, err = run_show(capsys, d / "frames", d / "gt.json", "--video-id", 4,
                          "--png-dir", d / "png")
    assert rc == 0, err
    got0 = np.array(Image.open(d / "png" / "00000.png"))
    got3 = np.array(Image.open(d / "png" / "00003.png"))
    np.testing.assert_array_equal(got0, c.astype(np.int64))  # annotation order: c -> 1, b -> 2
    np.testing.assert_array_equal(got3, c.astype(np.int64) + 2 * b)
    assert not (d / "o.mp4").exists()

    # results checked against --gt; the GT video size disagrees with the frames
    gt["videos"][0].update(id=1, width=W + 2)
    gt["annotations"] = []
    (d / "gt_bad.json").write_text(json.dumps(gt))
    rc, _, err = run_show(capsys, d / "frames", d / "res.json", "--video-id", 1,
                          "--out", d / "o.mp4", "--gt", d / "gt_bad.json")
    assert rc == 2 and "gt_bad.json" in err and "height/width" in err
    assert not (d / "o.mp4").exists()


def test_show_with_gt_categories(clip, capsys):
    d, _ = clip
    gt = {"videos": [{"id": 1, "width": W, "height": H, "length": T},
                     {"id": 2, "width": W, "height": H, "length": T}],
          "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}], "annotations": []}
    (d / "gt.json").write_text(json.dumps(gt))
    rc, out, err = run_show(capsys, d / "frames", d / "res.json", "--video-id", 1,
                            "--out", d / "o.mp4", "--gt", d / "gt.json")
    assert rc == 0, err
    assert "2 tracks" in out and len(list(open_video(d / "o.mp4"))) == T


def test_show_errors_name_the_file(clip, capsys):
    d, (a, _, _) = clip
    args = ["--out", d / "o.mp4", "--png-dir", d / "png"]
    rc, _, err = run_show(capsys, d / "frames", d / "res.json", "--video-id", 9, *args)
    assert rc == 2 and "res.json" in err and "video id 9" in err

    small = [{"video_id": 1, "category_id": 1, "score": 0.9,
              "segmentations": [encode(np.ones((32, 48), bool))] * T}]
    (d / "small.json").write_text(json.dumps(small))
    rc, _, err = run_show(capsys, d / "frames", d / "small.json", "--video-id", 1, *args)
    assert rc == 2 and "small.json" in err and "segmentations[0]" in err and "32x48" in err

    short = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [None] * 3}]
    (d / "short.json").write_text(json.dumps(short))
    rc, _, err = run_show(capsys, d / "frames", d / "short.json", "--video-id", 1, *args)
    assert rc == 2 and "short.json" in err and "'segmentations'" in err

    rc, _, err = run_show(capsys, d / "missing", d / "res.json", "--video-id", 1, *args)
    assert rc == 2 and "missing" in err

    (d / "corrupt.mp4").write_bytes(np.random.default_rng(3).bytes(4000))
    rc, _, err = run_show(capsys, d / "corrupt.mp4", d / "res.json", "--video-id", 1, *args)
    assert rc == 2 and "corrupt.mp4" in err

    rc, _, err = run_show(capsys, d / "frames", d / "nope.json", "--video-id", 1, *args)
    assert rc == 2 and "nope.json" in err
    assert not (d / "o.mp4").exists() and not (d / "png").exists()


def test_show_error_exits_2_without_traceback_in_a_real_process(clip):
    d, _ = clip
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    p = subprocess.run([sys.executable, "-m", "tubelet", "show", str(d / "frames"),
                        str(d / "res.json"), "--video-id", "9", "--out", str(d / "o.mp4")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "res.json" in p.stderr
