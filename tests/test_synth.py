"""Tests of the procedural synthetic VIS benchmark (tubelet.data.synth, `tubelet synth`).

Every knob is checked by its effect on the generated frames and masks, with expectations derived
from the definition of the knob (never from a stored output of the generator).
"""
from __future__ import annotations

import hashlib
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tubelet.cli.main import main
from tubelet.data.synth import (CATEGORIES, CONFUSABLE_PAIRS, apply_overrides, generate_video,
                                preset, video_length, write_dataset)
from tubelet.data.synth import writer as synth_writer
from tubelet.data.synth.shapes import SHAPES
from tubelet.data.ytvis import load_ytvis
from tubelet.errors import InputError
from tubelet.structures.rle import decode

FLAT = ["bg_clutter=0", "bg_noise=0", "bg_gradient=0", "frame_noise=0", "light_gain_drift=0",
        "light_color_drift=0", "light_offset_drift=0"]   # uniform, constant background
QUIET = ["full_occlusion_prob=0", "birth_prob=0", "exit_prob=0"]


def tiny(*overrides: str):
    return apply_overrides(preset("tiny"), list(overrides))


def presence(frames) -> dict[int, list[bool]]:
    """instance_id -> [mask is not None per frame]."""
    out: dict[int, list[bool]] = {}
    for f in frames:
        for iid, _, m in f.instances:
            out.setdefault(iid, []).append(m is not None)
    return out


def touches_border(m: np.ndarray) -> bool:
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------- categories
def test_categories_and_confusable_pairs():
    assert len(CATEGORIES) >= 8
    assert len({c.id for c in CATEGORIES}) == len(CATEGORIES)
    assert len({(c.shape, c.texture) for c in CATEGORIES}) == len(CATEGORIES)  # shape+texture
    by_id = {c.id: c for c in CATEGORIES}
    assert len(CONFUSABLE_PAIRS) >= 3
    for a, b in CONFUSABLE_PAIRS:
        # only the outline differs: same texture, same palette
        assert by_id[a].texture == by_id[b].texture and by_id[a].colors == by_id[b].colors
        assert by_id[a].shape != by_id[b].shape


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape_geometry_constants(name):
    """The occlusion scheduler relies on r_out = 1, r_in and h_min: check them on a dense grid."""
    g = SHAPES[name]
    n = 801
    u, v = np.meshgrid(np.linspace(-1.2, 1.2, n), np.linspace(-1.2, 1.2, n))
    inside = g.fn(u, v)
    r = np.hypot(u, v)
    assert r[inside].max() <= 1.0 + 1e-9                         # circumscribed radius 1
    assert inside[r <= g.r_in - 1e-6].all()                      # inscribed disc inside
    if g.r_in > 0:
        step = 2.4 / (n - 1)
        assert not inside[(r > g.r_in + 2 * step) & (r < g.r_in + 0.05)].all()  # and tight
    pu, pv = u[inside], v[inside]
    supports = [np.max(pu * math.cos(a) + pv * math.sin(a)) for a in np.linspace(0, 2 * np.pi, 720)]
    assert min(supports) >= g.h_min - 0.01
    assert min(supports) <= g.h_min + 0.01


# ----------------------------------------------------------------------------------- dataset
def test_same_seed_same_bytes_different_seed_different(tmp_path):
    cfg = tiny()
    write_dataset(tmp_path / "a", cfg, seed=5, videos=2)
    write_dataset(tmp_path / "b", cfg, seed=5, videos=2)
    write_dataset(tmp_path / "c", cfg, seed=6, videos=2)
    ha, hb, hc = (tree_hash(tmp_path / k) for k in "abc")
    assert ha == hb
    assert ha != hc
    # videos are independent of how many are written: video 0 is the same with --videos 1
    write_dataset(tmp_path / "d", cfg, seed=5, videos=1)
    assert (tree_hash(tmp_path / "d" / "train" / "JPEGImages" / "video_00000")
            == tree_hash(tmp_path / "a" / "train" / "JPEGImages" / "video_00000"))


def test_written_dataset_loads_and_agrees_with_frames(tmp_path):
    cfg = tiny()
    paths = write_dataset(tmp_path, cfg, seed=1, videos=3)
    assert set(paths) == {"train", "valid"}
    for split, path in paths.items():
        assert path == tmp_path / split / "instances.json"
        assert not list((tmp_path / split).glob(".JPEGImages*"))    # no temporary folders left
        ds = load_ytvis(path)
        raw = json.loads(path.read_text())
        assert len(ds.videos) == 3
        cats = {c["id"]: c for c in raw["categories"]}
        assert set(cats) == {c.id for c in CATEGORIES}
        for a, b in CONFUSABLE_PAIRS:
            assert b in cats[a]["confusable_with"] and a in cats[b]["confusable_with"]
        for v in ds.videos.values():
            assert cfg.min_frames <= v.length <= cfg.max_frames
            for fn in v.file_names:
                with Image.open(tmp_path / split / "JPEGImages" / fn) as im:
                    assert im.size == (v.width, v.height) == (cfg.width, cfg.height)
        assert ds.annotations
        for a, ra in zip(ds.annotations, raw["annotations"]):
            v = ds.videos[a.video_id]
            assert ra["iscrowd"] == 0 and any(s is not None for s in a.segmentations)
            for seg, ar, box in zip(a.segmentations, ra["areas"], ra["bboxes"]):
                if seg is None:
                    assert ar is None and box is None
                    continue
                m = decode(seg).astype(bool)
                assert m.shape == (v.height, v.width)
                assert ar == m.sum() >= cfg.min_area
                ys, xs = np.nonzero(m)
                assert box == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_interrupted_run_leaves_previous_split_intact(tmp_path, monkeypatch):
    cfg = tiny()
    write_dataset(tmp_path, cfg, seed=2, videos=2)
    before = tree_hash(tmp_path)
    real = synth_writer.generate_video

    def boom(cfg, seed, index):
        for k, fr in enumerate(real(cfg, seed, index)):
            if index == 1 and k == 2:
                raise RuntimeError("killed")
            yield fr
    monkeypatch.setattr(synth_writer, "generate_video", boom)
    with pytest.raises(RuntimeError):
        write_dataset(tmp_path, cfg, seed=9, videos=2)
    assert tree_hash(tmp_path) == before                  # old complete dataset untouched
    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "fresh", cfg, seed=9, videos=2)
    assert not (tmp_path / "fresh" / "train" / "instances.json").exists()
    assert not list((tmp_path / "fresh" / "train").iterdir())  # no half split, no temp folder


# ----------------------------------------------------------------------------------- knobs
def test_full_occlusion_knob_hides_then_returns():
    def runs(prob: float) -> int:
        cfg = tiny(f"full_occlusion_prob={prob}", "min_frames=14", "max_frames=14", "exit_prob=0",
                   "birth_prob=0", "max_distractors=0", "min_occluded_frames=2",
                   "max_occluded_frames=3")
        count = 0
        for i in range(4):
            for seq in presence(generate_video(cfg, 0, i)).values():
                s = "".join("#" if p else "." for p in seq).strip(".")
                count += any(len(gap) >= 2 for gap in s.split("#"))   # hidden >= 2, then back
        return count
    with_knob, without = runs(1.0), runs(0.0)
    assert with_knob >= 4
    assert with_knob > without


def test_mid_video_births():
    first = []
    for i in range(4):
        for seq in presence(generate_video(tiny("birth_prob=1", "min_frames=8", "full_occlusion_prob=0"), 0, i)).values():
            if any(seq):
                first.append(seq.index(True))
    assert first and min(first) > 0
    first0 = [seq.index(True) for i in range(4)
              for seq in presence(generate_video(tiny(*QUIET), 0, i)).values() if any(seq)]
    assert sum(f == 0 for f in first0) >= 0.75 * len(first0)


def test_enter_and_leave_frame():
    cfg = tiny("exit_prob=1", "birth_prob=0", "full_occlusion_prob=0", "min_frames=16",
               "max_frames=16", "max_distractors=0")
    enters = leaves = 0
    for i in range(6):
        frames = list(generate_video(cfg, 0, i))
        for k in range(len(frames[0].instances)):
            masks = [f.instances[k][2] for f in frames]
            for t in range(1, len(masks)):
                if masks[t - 1] is None and masks[t] is not None and touches_border(masks[t]):
                    enters += 1
                if masks[t - 1] is not None and masks[t] is None and touches_border(masks[t - 1]):
                    leaves += 1
    assert enters >= 1 and leaves >= 1
    # staying objects never touch the border, even with camera pan and zoom
    cfg = tiny(*QUIET, "min_frames=16", "max_frames=16", "camera_pan=0.2", "camera_zoom=0.2")
    for i in range(4):
        for f in generate_video(cfg, 0, i):
            assert not any(touches_border(m) for _, _, m in f.instances if m is not None)


def test_same_category_look_alikes_and_color_jitter():
    def shared_colors(jitter: float) -> list[bool]:
        cfg = tiny(*FLAT, *QUIET, "same_category_prob=1", "min_instances=3", "max_instances=3",
                   "max_distractors=0", f"instance_color_jitter={jitter}")
        out = []
        for i in range(3):
            f = next(iter(generate_video(cfg, 0, i)))
            cats = {c for _, c, _ in f.instances}
            assert len(cats) == 1                                  # all one category
            if CATEGORIES[next(iter(cats)) - 1].texture == "gradient":
                continue
            sets = [{tuple(p) for p in f.image[m]} for _, _, m in f.instances if m is not None]
            out += [bool(a & b) for k, a in enumerate(sets) for b in sets[k + 1:]]
        return out
    same, jittered = shared_colors(0.0), shared_colors(0.05)
    assert same and all(same)            # identical palettes without jitter
    assert jittered and not any(jittered)


def test_masks_are_the_visible_parts_and_distractors_unannotated():
    cfg = tiny(*FLAT, "full_occlusion_prob=1", "min_frames=10", "max_frames=10", "min_area=0",
               "max_distractors=0")
    n_checked = 0
    for i in range(3):
        for f in generate_video(cfg, 0, i):
            bg = f.image[0, 0]                              # the flat background colour,
            masks = [m for _, _, m in f.instances if m is not None]
            total = np.zeros(f.image.shape[:2], dtype=int)
            for m in masks:
                total += m
            assert total.max() <= 1                         # visible parts never overlap
            if total[0, 0]:                                 # unless an instance covers the corner
                continue
            painted = np.any(f.image != bg, axis=-1)
            np.testing.assert_array_equal(painted, total.astype(bool))
            n_checked += 1
    assert n_checked > 10
    # distractors are painted but never annotated
    cfg = tiny(*FLAT, "min_instances=0", "max_instances=0", "min_distractors=3", "max_distractors=3")
    painted_any = False
    for f in generate_video(cfg, 0, 0):
        assert f.instances == []
        painted_any |= bool(np.any(f.image != f.image[0, 0]))
    assert painted_any


def test_min_area_knob():
    for i in range(2):
        for f in generate_video(tiny("min_area=40"), 0, i):
            assert all(m.sum() >= 40 for _, _, m in f.instances if m is not None)
        for f in generate_video(tiny("min_area=100000"), 0, i):
            assert all(m is None for _, _, m in f.instances)


def test_lighting_drift_changes_background_intensity():
    empty = ["min_instances=0", "max_instances=0", "max_distractors=0", "camera_pan=0",
             "camera_zoom=0", "frame_noise=0", "min_frames=16", "max_frames=16"]
    means = [f.image.mean() for f in generate_video(tiny(*empty, "light_gain_drift=0.4"), 0, 0)]
    assert max(means) - min(means) > 5.0
    frames = [f.image for f in generate_video(tiny(*empty, "light_gain_drift=0", "light_color_drift=0",
                                                   "light_offset_drift=0"), 0, 0)]
    assert all(np.array_equal(frames[0], x) for x in frames)


def _best_shift(a: np.ndarray, b: np.ndarray, r: int = 12) -> tuple[tuple[int, int], float, float]:
    """Integer (dy, dx) minimising mean |a[y, x] - b[y + dy, x + dx]| on the overlap."""
    H, W = a.shape[:2]
    a, b = a.astype(float), b.astype(float)
    errs = {}
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ys, xs = slice(max(0, -dy), min(H, H - dy)), slice(max(0, -dx), min(W, W - dx))
            ys2, xs2 = slice(ys.start + dy, ys.stop + dy), slice(xs.start + dx, xs.stop + dx)
            errs[dy, dx] = np.abs(a[ys, xs] - b[ys2, xs2]).mean()
    best = min(errs, key=errs.get)
    return best, errs[best], errs[0, 0]


def test_camera_pan_moves_background_and_objects_together():
    still = ["light_gain_drift=0", "light_color_drift=0", "light_offset_drift=0", "frame_noise=0",
             "camera_zoom=0", "max_distractors=0", "min_frames=12", "max_frames=12", *QUIET,
             "max_speed=0", "max_accel=0", "max_rot_speed=0", "max_scale_rate=0",
             "min_instances=1", "max_instances=1"]
    moved = 0
    for i in range(3):
        frames = list(generate_video(tiny(*still, "camera_pan=0.25"), 0, i))
        bg = [np.where(f.instances[0][2][..., None], 0, f.image) if f.instances[0][2] is not None
              else f.image for f in frames]
        (dy, dx), err, err0 = _best_shift(bg[0], bg[3], r=14)
        if (dy, dx) == (0, 0):
            continue
        moved += 1
        assert err < err0 / 2
        m0, m1 = frames[0].instances[0][2], frames[3].instances[0][2]
        c0, c1 = np.argwhere(m0).mean(0), np.argwhere(m1).mean(0)
        # the object is static in the world: it moves with the background (frame = bg + shift)
        assert abs((c1[0] - c0[0]) - dy) <= 1.5 and abs((c1[1] - c0[1]) - dx) <= 1.5
    assert moved >= 2
    frames = [f.image for f in generate_video(tiny(*still, "camera_pan=0"), 0, 0)]
    assert all(np.array_equal(frames[0], x) for x in frames)


def test_video_lengths_and_long_override():
    cfg = tiny("min_frames=3", "max_frames=9")
    lengths = [video_length(cfg, 0, i) for i in range(30)]
    assert min(lengths) >= 3 and max(lengths) <= 9 and len(set(lengths)) > 3
    assert sum(1 for _ in generate_video(cfg, 0, 7)) == lengths[7]
    long = preset("long")
    assert (long.length, long.splits, long.split_videos) == (2000, ("valid",), (1,))
    assert video_length(long, 0, 0) == 2000
    short = apply_overrides(long, ["length=200", "height=24", "width=32"])
    assert sum(1 for _ in generate_video(short, 0, 0)) == 200
    bench = preset("bench")
    assert (bench.height, bench.width, bench.split_counts()) == (192, 320, {"train": 300, "valid": 50})
    assert (bench.min_frames, bench.max_frames) == (10, 40)


def test_streaming_memory_does_not_grow_with_length():
    def peak(n: int) -> int:
        cfg = tiny(f"length={n}", "full_occlusion_prob=0")
        tracemalloc.start()
        for f in generate_video(cfg, 3, 0):
            pass
        _, p = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return p
    peak(3)                                   # warm-up: first-use imports and caches
    short, long = peak(30), peak(300)
    # a kept frame is 64*96*3 bytes plus masks: 270 more frames would add > 5 MB
    assert long <= short * 1.1 + 64 * 1024, (short, long)


# ----------------------------------------------------------------------------------- config / CLI
def test_overrides_are_typed_and_checked():
    cfg = apply_overrides(preset("tiny"), ["max_frames=12", "camera_pan=0.5",
                                           "splits=a,b,c", "split_videos=1,2,3"])
    assert cfg.max_frames == 12 and cfg.camera_pan == 0.5
    assert cfg.splits == ("a", "b", "c") and cfg.split_videos == (1, 2, 3)
    for bad, word in [("unknown_key=3", "unknown_key"), ("max_frames=abc", "abc"),
                      ("max_frames=2.5", "max_frames"), ("camera_pan=nan", "camera_pan"),
                      ("max_frames=2", "max_frames"), ("birth_prob=1.5", "birth_prob"),
                      ("split_videos=1", "split_videos"), ("noequals", "key=value")]:
        with pytest.raises(InputError, match=word):
            apply_overrides(preset("tiny"), [bad])
    with pytest.raises(InputError, match="preset"):
        preset("huge")


def test_cli_writes_documented_layout(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["synth", str(out), "--preset", "tiny", "--videos", "1", "--seed", "3",
               "--no-progress", "max_frames=5"])
    assert rc == 0
    for split in ("train", "valid"):
        ds = load_ytvis(out / split / "instances.json")
        (v,) = ds.videos.values()
        assert v.file_names[0] == "video_00000/00000.jpg"
        for fn in v.file_names:
            assert (out / split / "JPEGImages" / fn).is_file()
        assert sorted(p.name for p in (out / split).iterdir()) == ["JPEGImages", "instances.json"]


@pytest.mark.parametrize("bad,word", [("unknown_key=3", "unknown_key"), ("max_frames=abc", "abc")])
def test_cli_bad_override_exits_2(tmp_path, capsys, bad, word):
    rc = main(["synth", str(tmp_path / "s"), "--preset", "tiny", "--no-progress", bad])
    err = capsys.readouterr().err
    assert rc == 2
    assert word in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
