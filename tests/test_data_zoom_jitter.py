"""Zoom-out and colour jitter (clip augmentation): hand cases and slow per-pixel references, the
one-draw-per-clip rule, and the config checks."""
import numpy as np
import pytest
import torch

from tubelet.data.transforms import ClipAugConfig, apply_clip_aug, color_jitter, zoom_out
from tubelet.engine.config import load_experiment
from tubelet.errors import InputError

FILL = (124, 116, 104)


def test_zoom_out_by_half_averages_2x2_blocks_and_fills_the_rest():
    # bilinear, align_corners=False, exactly 2x down: output pixel (i, j) samples the source at
    # (2i + 0.5, 2j + 0.5), i.e. the mean of the 2x2 block (2i..2i+1, 2j..2j+1)
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (1, 3, 4, 6), generator=g, dtype=torch.uint8)
    masks = torch.zeros(1, 2, 4, 6, dtype=torch.bool)
    masks[0, 0, 0:2, 0:2] = torch.tensor([[1, 1], [0, 0]], dtype=torch.bool)  # 2 of 4: kept
    masks[0, 1, 2:4, 2:4] = torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)  # 1 of 4: gone
    out, m = zoom_out(img, masks, (2, 3), 1, 2, FILL)  # half of 4 x 6
    assert out.shape == img.shape and m.shape == masks.shape
    for y in range(4):
        for x in range(6):
            inside = 1 <= y < 3 and 2 <= x < 5
            for c in range(3):
                if inside:
                    i, j = y - 1, x - 2
                    block = img[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].double()
                    # the block mean is a multiple of 1/4: rounded to the nearest integer
                    assert abs(int(out[0, c, y, x]) - float(block.mean())) <= 0.5
                else:
                    assert out[0, c, y, x] == FILL[c]
    expect0 = torch.zeros(4, 6, dtype=torch.bool)
    expect0[1, 2] = True  # block (0, 0) -> canvas (1 + 0, 2 + 0)
    assert torch.equal(m[0, 0], expect0)
    assert not m[0, 1].any()


def test_zoom_out_to_its_own_size_at_the_origin_is_the_identity():
    img = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    masks = torch.rand(2, 3, 5, 7) > 0.5
    out, m = zoom_out(img, masks, (5, 7), 0, 0, FILL)
    assert torch.equal(out, img) and torch.equal(m, masks)


def _jitter_reference(img, b, c, s):
    """Per-pixel loops of the documented formula."""
    t, _, h, w = img.shape
    wts = (0.299, 0.587, 0.114)
    out = np.zeros((t, 3, h, w))
    for k in range(t):
        x = img[k].double().numpy() * b
        mean = sum(wts[ch] * x[ch] for ch in range(3)).mean()
        x = (x - mean) * c + mean
        for yy in range(h):
            for xx in range(w):
                grey = sum(wts[ch] * x[ch, yy, xx] for ch in range(3))
                for ch in range(3):
                    out[k, ch, yy, xx] = (x[ch, yy, xx] - grey) * s + grey
    return np.clip(np.round(out), 0, 255)


@pytest.mark.parametrize("b,c,s", [(1.0, 1.0, 1.0), (0.7, 1.2, 0.8), (1.3, 0.75, 1.25)])
def test_color_jitter_matches_the_per_pixel_formula(b, c, s):
    img = torch.randint(0, 256, (2, 3, 4, 5), generator=torch.Generator().manual_seed(1),
                        dtype=torch.uint8)
    out = color_jitter(img, b, c, s)
    ref = _jitter_reference(img, b, c, s)
    assert out.dtype == torch.uint8
    assert np.abs(out.numpy().astype(float) - ref).max() <= 1  # float32 vs float64 rounding
    if (b, c, s) == (1.0, 1.0, 1.0):
        assert torch.equal(out, img)


def test_zero_saturation_makes_grey_pixels():
    img = torch.tensor([[[[255]], [[0]], [[0]]]], dtype=torch.uint8)  # one red pixel
    out = color_jitter(img, 1.0, 1.0, 0.0)
    assert out[0, :, 0, 0].tolist() == [76, 76, 76]  # 0.299 * 255 = 76.2


def test_zoom_out_in_apply_clip_aug_is_one_draw_for_the_whole_clip():
    cfg = ClipAugConfig(short_sides=(40,), max_size=400, hflip_prob=0.0, zoom_out_prob=1.0,
                        zoom_out_min=0.5, color_jitter=0.2)
    frame = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    mask = torch.zeros(1, 40, 60, dtype=torch.bool)
    mask[0, 10:30, 20:40] = True
    images, masks = apply_clip_aug(frame.expand(3, 3, 40, 60).clone(),
                                   mask.expand(3, 1, 40, 60).clone(), cfg,
                                   np.random.default_rng(3))
    assert images.shape == (3, 3, 40, 60)
    for k in (1, 2):  # identical frames stay identical: one draw per clip
        assert torch.equal(images[k], images[0]) and torch.equal(masks[k], masks[0])
    area = int(masks[0].sum())
    assert 0.25 * 400 * 0.8 <= area < 400  # shrunk by a factor in [0.5, 1)
    assert (images[0] != frame).any()


def test_defaults_leave_the_clip_untouched_by_the_new_steps():
    cfg = ClipAugConfig(short_sides=(40,), hflip_prob=0.0)
    frame = torch.randint(0, 256, (2, 3, 40, 60), dtype=torch.uint8)
    mask = torch.rand(2, 1, 40, 60) > 0.5
    images, masks = apply_clip_aug(frame, mask, cfg, np.random.default_rng(0))
    assert torch.equal(images, frame) and torch.equal(masks, mask)


@pytest.mark.parametrize("key,value", [("zoom_out_prob", 1.5), ("zoom_out_min", 0),
                                       ("color_jitter", 1.0), ("color_jitter", -0.1),
                                       ("crop_prob", -1), ("hflip_prob", 2),
                                       ("zoom_out_fill", "[0, 300, 0]"),
                                       ("zoom_out_fill", "[1, 2]")])
def test_bad_aug_settings_name_the_field(key, value):
    with pytest.raises(InputError, match=f"aug.{key}"):
        load_experiment("configs/condinst_track_tiny.yaml", [f"data.clip.aug.{key}={value}"])
