"""Overlay rendering, id PNGs and ``render_video`` (expected pixels from the documented
formulas evaluated here by hand: blend, painter's order, ids)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.video_clips import H, W, save_pngs, smooth_frames
from tubelet.errors import InputError
from tubelet.structures import rle as rle_ops
from tubelet.structures.instances import VideoInstances
from tubelet.video import (VideoSource, color_for_track, draw_overlay, id_png, open_video,
                           render_video)


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
