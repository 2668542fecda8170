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


# ---------------------------------------------------------------- issue 13: the 34 tracebacks
def _main(capsys, *args):
    """Run the CLI in this process (no torch start-up per case): (exit code, stderr)."""
    from tubelet.cli.main import main
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def _one_line(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert str(n) in err, (n, err)


GT_CASES.update({
    "file_names_int": (lambda g: g["videos"][0].update(file_names=[1, 2]), ["file_names[0]", "1"]),
    "file_names_dotdot": (lambda g: g["videos"][0].update(file_names=["../../x/0.jpg", "v/1.jpg"]),
                          ["videos[0]", "file_names[0]", "leaves the image root"]),
    "file_names_abs": (lambda g: g["videos"][0].update(file_names=["/etc/0.jpg", "/etc/1.jpg"]),
                       ["videos[0]", "file_names[0]", "leaves the image root"]),
    "file_names_inner_dotdot": (lambda g: g["videos"][0].update(file_names=["v/../../0.jpg", "v/1"]),
                                ["file_names[0]", "leaves the image root"]),
})
RES_CASES.update({
    "uncompressed_negative": (dict(segmentations=[{"size": [4, 5], "counts": [25, -5]}, None]),
                              ["segmentations[0]", "negative"]),
    "float_size": (dict(segmentations=[{"size": [4.0, 5], "counts": [20]}, None]),
                   ["segmentations[0]", "two positive ints"]),
})


def test_json_nested_100k_deep(tmp_path, capsys):
    deep = _write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    _one_line(*_main(capsys, "validate", deep), "deep.json", "nested too deeply")
    gt = _write(tmp_path / "gt.json", _gt())
    _one_line(*_main(capsys, "eval", gt, deep), "deep.json", "nested too deeply")


def test_all_unknown_result_categories_warn(tmp_path, capsys):
    gt = _write(tmp_path / "gt.json", _gt())
    res = _write(tmp_path / "res.json", _res(category_id=77))
    rc, err = _main(capsys, "validate", gt, res)
    assert rc == 0 and "warning: 1 of 1 records" in err and "no record is scored" in err


@pytest.mark.parametrize("cmd", ["eval_out", "eval_plot", "reduce", "split", "import_davis"])
@pytest.mark.parametrize("where", ["dir", "through_file", "unwritable"])
def test_output_paths_checked_before_work(tmp_path, capsys, monkeypatch, cmd, where):
    gt = _write(tmp_path / "gt.json", _gt())
    res = _write(tmp_path / "res.json", _res())
    (tmp_path / "adir").mkdir()
    _write(tmp_path / "afile", "x")
    ro = tmp_path / "ro"
    ro.mkdir()
    import os
    real_access = os.access  # root ignores permission bits: simulate the unwritable folder
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(ro) else real_access(p, m))
    target = {"dir": tmp_path / "adir", "through_file": tmp_path / "afile" / "o.json",
              "unwritable": ro / "o.json"}[where]
    needle = {"dir": "existing folder", "through_file": "goes through a file",
              "unwritable": "not writable"}[where]
    if cmd == "split":  # split writes into a folder
        target = {"dir": tmp_path / "afile", "through_file": tmp_path / "afile" / "d",
                  "unwritable": ro / "d"}[where]
        needle = {"dir": "is a file"}.get(where, needle)
    args = {"eval_out": ["eval", gt, res, "--out", target],
            "eval_plot": ["eval", gt, res, "--plot", target],
            "reduce": ["reduce", res, target],
            "split": ["split", gt, "--out-dir", target],
            "import_davis": ["import-davis", tmp_path / "no_such_davis", target]}[cmd]
    _one_line(*_main(capsys, *args), target.name if where != "dir" else target, needle)


def test_predict_and_train_check_out_before_work(tmp_path, capsys):
    _write(tmp_path / "afile", "x")
    # --out is refused before the weights are even looked at (they do not exist here)
    _one_line(*_main(capsys, "predict", "--weights", tmp_path / "nope.pt", "--source", tmp_path,
                     "--out", tmp_path / "afile" / "p"), "--out", "goes through a file")
    y = _write(tmp_path / "toy.yaml", "method: condinst-track\n")
    _one_line(*_main(capsys, "train", "--config", y, "--out", tmp_path / "afile" / "run",
                     f"data.train_json={tmp_path / 'gt.json'}"), "--out", "goes through a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "toy.yaml"]  # no config.json
    _one_line(*_main(capsys, "predict", "--source", tmp_path, "--max-videos", "-1"),
              "--max-videos", "-1")
    _one_line(*_main(capsys, "train", "--config", y, "--out", tmp_path / "r",
                     "data.clip.num_frames=0"), "data.clip.num_frames", "got 0")


def test_inside_refuses_escapes(tmp_path):
    from tubelet.errors import InputError
    from tubelet.utils.fileio import inside
    assert inside(tmp_path, "a", "b.mp4") == tmp_path / "a" / "b.mp4"
    for bad in (("..", "x.mp4"), ("/etc/x",), ("a/../../x",)):
        with pytest.raises(InputError, match="leaves the folder"):
            inside(tmp_path, *bad)
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(InputError, match="leaves the folder"):
        inside(tmp_path, "link", "x")


def _bomb(path):
    Image.new("1", (20000, 20000)).save(path)  # ~50 kB on disk, 400 M pixels declared


def test_decompression_bomb_and_non_image_frames(tmp_path, capsys):
    root = tmp_path / "d"
    (root / "JPEGImages" / "s").mkdir(parents=True)
    (root / "Annotations" / "s").mkdir(parents=True)
    (root / "JPEGImages/s/00000.jpg").write_bytes(b"not an image")
    _one_line(*_main(capsys, "import-davis", root, tmp_path / "o.json"), "00000.jpg",
              "cannot read frame image")
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "JPEGImages/s/00000.jpg")
    _bomb(root / "Annotations/s/00000.png")
    _one_line(*_main(capsys, "import-davis", root, tmp_path / "o.json"), "00000.png",
              "decompression bomb")
    frames = tmp_path / "frames"
    frames.mkdir()
    _bomb(frames / "00000.png")
    res = _write(tmp_path / "res.json", _res())
    _one_line(*_main(capsys, "show", frames, res, "--video-id", "1", "--out", tmp_path / "o.mp4"),
              "decompression bomb")
    _one_line(*_main(capsys, "predict", "--source", frames, "--out", tmp_path / "p"),
              "00000.png")  # the message names the frame file
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "o.mp4").exists()


def test_davis_rgb_multi_object_masks_and_frame_sizes(tmp_path):
    from tubelet.data.davis import import_davis
    from tubelet.errors import InputError
    from tubelet.structures.rle import decode
    root = tmp_path / "d"
    (root / "JPEGImages" / "s").mkdir(parents=True)
    (root / "Annotations" / "s").mkdir(parents=True)
    red, green = (236, 95, 103), (249, 145, 87)  # two flat colours of an RGB re-save
    for t in range(2):
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / f"JPEGImages/s/{t:05d}.jpg")
        m = np.zeros((6, 8, 3), np.uint8)
        m[1:3, 1:3] = red
        if t == 1:
            m[4:6, 5:8] = green  # the second object appears in frame 1
        Image.fromarray(m).save(root / f"Annotations/s/{t:05d}.png")
    data = import_davis(root)
    anns = data["annotations"]
    assert len(anns) == 2  # one track per colour (grey-converted, they used to merge or vanish)
    a, b = anns
    assert decode(a["segmentations"][0]).sum() == 4 and decode(a["segmentations"][1]).sum() == 4
    assert a["segmentations"][0] is not None and b["segmentations"][0] is None
    assert decode(b["segmentations"][1])[4:6, 5:8].all() and decode(b["segmentations"][1]).sum() == 6
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(root / "JPEGImages/s/00001.jpg")
    with pytest.raises(InputError, match="6x9 differs from the first frame's 6x8"):
        import_davis(root)
