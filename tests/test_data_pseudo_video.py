"""Pseudo videos from single frames (Propose-Reduce's main-stage data): the affine warp on hand
cases, the per-frame draw, the dataset mode and the config checks."""
import numpy as np
import pytest
import torch

from tubelet.data.clips import ClipConfig, ClipDataset, read_image
from tubelet.data.davis import import_davis
from tubelet.data.transforms import ClipAugConfig, PseudoVideoConfig, affine_warp, pseudo_video
from tubelet.data.ytvis import load_ytvis
from tubelet.engine.config import load_experiment
from tubelet.errors import InputError


def _dot(h, w, x, y, value=200):
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    img[:, y, x] = value
    m = torch.zeros(1, h, w, dtype=torch.bool)
    m[0, y, x] = True
    return img, m


def test_identity_warp_changes_nothing():
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, 7, 9), generator=g, dtype=torch.uint8)
    m = torch.rand(2, 7, 9, generator=g) > 0.5
    out, om = affine_warp(img, m, 0.0, 1.0, (0.0, 0.0))
    assert torch.equal(out, img) and torch.equal(om, m)


def test_rotation_by_90_degrees_about_the_centre():
    # 5x5, centre (2, 2); pixel (x 2, y 1) is (0, -1) from the centre; R(90) (0, -1) = (1, 0):
    # it lands on (x 3, y 2) -- x turned towards y (clockwise on screen)
    img, m = _dot(5, 5, x=2, y=1)
    out, om = affine_warp(img, m, 90.0, 1.0, (0.0, 0.0))
    assert om[0].nonzero().tolist() == [[2, 3]]  # (row y, col x)
    assert out[:, 2, 3].tolist() == [200] * 3 and int(out.sum()) == 3 * 200


def test_shift_moves_by_whole_pixels_and_fills_with_background():
    h, w = 6, 8
    img = torch.arange(h * w, dtype=torch.uint8).reshape(1, h, w).repeat(3, 1, 1)
    m = torch.zeros(1, h, w, dtype=torch.bool)
    m[0, 1:3, 2:5] = True
    out, om = affine_warp(img, m, 0.0, 1.0, (2.0, 1.0))
    want = torch.zeros(1, h, w, dtype=torch.bool)
    want[0, 2:4, 4:7] = True
    assert torch.equal(om, want)
    assert torch.equal(out[:, 1:, 2:], img[:, :-1, :-2])  # content moved right 2, down 1
    assert not out[:, 0].any() and not out[:, :, :2].any()  # came from outside: 0


def test_scale_doubles_the_offset_from_the_centre():
    # 5x5, pixel (x 3, y 2) is +1 in x from the centre: scale 2 puts it at +2, (x 4, y 2)
    img, m = _dot(5, 5, x=3, y=2)
    out, om = affine_warp(img, m, 0.0, 2.0, (0.0, 0.0))
    assert bool(om[0, 2, 4]) and not bool(om[0, 2, 2])
    assert int(out[0, 2, 4]) == 200 and int(out[0, 2, 2]) == 0


def test_pseudo_video_frame0_is_the_frame_and_draws_are_per_frame():
    g = torch.Generator().manual_seed(1)
    img = torch.randint(0, 256, (3, 16, 20), generator=g, dtype=torch.uint8)
    m = torch.zeros(1, 16, 20, dtype=torch.bool)
    m[0, 4:12, 5:15] = True
    cfg = PseudoVideoConfig(prob=1.0)
    imgs, ms = pseudo_video(img, m, 3, cfg, np.random.default_rng(0))
    assert imgs.shape == (3, 3, 16, 20) and ms.shape == (3, 1, 16, 20)
    assert torch.equal(imgs[0], img) and torch.equal(ms[0], m)
    assert not torch.equal(ms[1], ms[2])  # independent draws
    again = pseudo_video(img, m, 3, cfg, np.random.default_rng(0))
    assert torch.equal(again[0], imgs) and torch.equal(again[1], ms)  # seeded
    # no rotation, scale or shift allowed: every frame is the frame
    still = PseudoVideoConfig(prob=1.0, max_rotation=0.0, max_scale=0.0, max_shift=0.0)
    imgs, ms = pseudo_video(img, m, 3, still, np.random.default_rng(0))
    assert all(torch.equal(i, img) for i in imgs) and all(torch.equal(x, m) for x in ms)


def test_clip_dataset_pseudo_mode_reads_one_frame(davis_root):
    gt = load_ytvis(import_davis(davis_root, ["dog"]))
    video = next(iter(gt.videos.values()))
    aug = ClipAugConfig(short_sides=(video.height,), max_size=10_000, hflip_prob=0.0)
    cfg = ClipConfig(num_frames=3, aug=aug, pseudo=PseudoVideoConfig(prob=1.0))
    ds = ClipDataset(gt, davis_root / "JPEGImages/480p", cfg, seed=0)
    clip = ds[0]
    t = clip["frames"][0]
    assert clip["frames"] == [t] * 3
    frame = np.array(read_image(davis_root / "JPEGImages/480p" / video.file_names[t]))
    assert torch.equal(clip["images"][0], torch.from_numpy(frame).permute(2, 0, 1))
    assert not torch.equal(clip["images"][1], clip["images"][0])
    for tg in clip["targets"]:  # the one object, warped, keeps its identity
        assert tg["ids"].tolist() == [0] and tg["masks"].shape[-2:] == clip["images"].shape[-2:]
    # not in evaluation mode
    evald = ClipDataset(gt, davis_root / "JPEGImages/480p", cfg, train=False, seed=0)
    assert len(set(evald[0]["frames"])) == 3


@pytest.mark.parametrize("key,value", [("prob", 1.5), ("prob", -0.1), ("max_scale", 1.0),
                                       ("max_rotation", 200), ("max_shift", 2)])
def test_bad_pseudo_settings_name_the_field(key, value):
    with pytest.raises(InputError, match=f"pseudo.{key}"):
        load_experiment("configs/propose_reduce_tiny.yaml", [f"data.clip.pseudo.{key}={value}"])
