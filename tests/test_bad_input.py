"""Bad-input catalogue: each case gives a clear message naming the file (and the field where there
is one), a non-zero exit, no traceback, and no partial output."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tubelet.structures import rle


def _gt(h=4, w=5, length=2):
    m = np.zeros((h, w), np.uint8)
    m[1:3, 1:3] = 1
    return {"videos": [{"id": 1, "width": w, "height": h, "length": length,
                        "file_names": [f"v/{t}.jpg" for t in range(length)]}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "video_id": 1, "category_id": 1,
                             "segmentations": [rle.encode(m)] + [None] * (length - 1),
                             "areas": [4.0] + [None] * (length - 1), "iscrowd": 0}]}


def _res(h=4, w=5, length=2, **over):
    m = np.zeros((h, w), np.uint8)
    m[1:3, 1:3] = 1
    r = {"video_id": 1, "category_id": 1, "score": 0.9,
         "segmentations": [rle.encode(m)] + [None] * (length - 1)}
    r.update(over)
    return [r]


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _check(r, *needles):
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert str(n) in r.stderr, (n, r.stderr)


GT_CASES = {
    "missing_videos": (lambda g: g.pop("videos"), ["'videos'", "missing key"]),
    "dup_video": (lambda g: g["videos"].append(dict(g["videos"][0])), ["videos[1]", "duplicate video id"]),
    "dup_ann": (lambda g: g["annotations"].append(dict(g["annotations"][0])), ["annotations[1]", "duplicate annotation id"]),
    "unknown_cat": (lambda g: g["annotations"][0].update(category_id=42), ["annotations[0]", "category_id", "42"]),
    "unknown_video": (lambda g: g["annotations"][0].update(video_id=9), ["annotations[0]", "video_id"]),
    "frame_count": (lambda g: g["annotations"][0]["segmentations"].append(None), ["segmentations", "3 frames"]),
    "mask_size": (lambda g: g["annotations"][0]["segmentations"].__setitem__(0, rle.encode(np.ones((3, 3), np.uint8))), ["segmentations[0]", "differs"]),
    "bad_rle_sum": (lambda g: g["annotations"][0]["segmentations"].__setitem__(0, {"size": [4, 5], "counts": [3, 4]}), ["segmentations[0]", "sum"]),
    "negative_area": (lambda g: g["annotations"][0].update(areas=[-1.0, None]), ["areas[0]", "negative"]),
    "bad_width": (lambda g: g["videos"][0].update(width="5"), ["videos[0]", "width"]),
    "bad_iscrowd": (lambda g: g["annotations"][0].update(iscrowd=3), ["iscrowd"]),
}


@pytest.mark.parametrize("case", sorted(GT_CASES))
def test_bad_ground_truth(tmp_path, case):
    g = _gt()
    GT_CASES[case][0](g)
    gt = _write(tmp_path / "gt.json", g)
    r = run_cli("validate", gt)
    _check(r, "gt.json", *GT_CASES[case][1])


RES_CASES = {
    "unknown_video": (dict(video_id=5), ["results[0]", "video_id", "unknown video id 5"]),
    "nan_score": (None, ["results[0]", "score"]),
    "negative_score": (dict(score=-0.5), ["results[0]", "score", "negative"]),
    "string_score": (dict(score="high"), ["results[0]", "score"]),
    "wrong_frames": (dict(segmentations=[None]), ["results[0]", "segmentations", "1 frames"]),
    "wrong_size": (dict(segmentations=[rle.encode(np.ones((8, 8), np.uint8)), None]), ["segmentations[0]", "8x8", "4x5"]),
    "missing_score": ("drop_score", ["results[0]", "'score'", "missing key"]),
}


@pytest.mark.parametrize("case", sorted(RES_CASES))
def test_bad_results(tmp_path, case):
    gt = _write(tmp_path / "gt.json", _gt())
    over, needles = RES_CASES[case]
    if case == "nan_score":
        text = json.dumps(_res()).replace("0.9", "NaN")
        res = _write(tmp_path / "res.json", text)
    elif over == "drop_score":
        recs = _res()
        recs[0].pop("score")
        res = _write(tmp_path / "res.json", recs)
    else:
        res = _write(tmp_path / "res.json", _res(**over))
    r = run_cli("validate", gt, res)
    _check(r, "res.json", *needles)


def test_missing_and_malformed_and_empty_files(tmp_path):
    _check(run_cli("validate", tmp_path / "nope.json"), "nope.json", "not found")
    _check(run_cli("validate", _write(tmp_path / "bad.json", "{\"videos\": [")), "bad.json", "malformed JSON")
    _check(run_cli("validate", _write(tmp_path / "empty.json", "")), "empty.json", "empty")
    gt = _write(tmp_path / "gt.json", _gt())
    _check(run_cli("validate", gt, _write(tmp_path / "obj.json", {"a": 1})), "obj.json", "list")


def test_split_errors_leave_no_output(tmp_path):
    gt = _write(tmp_path / "gt.json", _gt())
    _check(run_cli("split", gt, "--val-fraction", "0.5"), "gt.json", "at least 2 videos")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json"]
    bad = _gt()
    bad["annotations"][0]["category_id"] = 3
    gt2 = _write(tmp_path / "gt2.json", bad)
    _check(run_cli("split", gt2), "gt2.json", "category_id")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json", "gt2.json"]


def test_import_davis_errors(tmp_path):
    out = tmp_path / "out.json"
    _check(run_cli("import-davis", tmp_path / "missing", out), "missing", "not found")
    root = tmp_path / "d"
    (root / "JPEGImages" / "s").mkdir(parents=True)
    (root / "Annotations" / "s").mkdir(parents=True)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "JPEGImages/s/00000.jpg")
    (root / "Annotations/s/00000.png").write_bytes(b"not a png at all")
    _check(run_cli("import-davis", root, out), "00000.png", "cannot read mask")
    Image.fromarray(np.zeros((5, 8), np.uint8)).save(root / "Annotations/s/00000.png")
    _check(run_cli("import-davis", root, out), "00000.png", "differs from frame size")
    assert not out.exists() and not list(tmp_path.glob(".out.json*"))
