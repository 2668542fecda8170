"""``tubelet show`` end to end on a tiny clip (64x96)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.video_clips import H, W, save_pngs, smooth_frames
from tubelet.cli.main import main
from tubelet.structures.rle import encode
from tubelet.video import color_for_track, open_video


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
