"""``tubelet eval``: output formats, the 2022 split options, the plot, and clean errors (exit 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_eval import hand_case, make_results
from tubelet.cli.main import main
from tubelet.eval import SUMMARY_KEYS
from tubelet.structures.rle import encode

AP_HAND = (1 + (3 + 4 * 51 / 101) / 10) / 2  # EVAL_NOTES' hand case: 0.750990


@pytest.fixture()
def files(tmp_path):
    gt, preds = hand_case()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(make_results(preds)))
    return tmp_path, gt, make_results(preds)


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["eval", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_table_and_json(files, capsys):
    d, _, _ = files
    rc, out, _ = cli(capsys, d / "gt.json", d / "res.json", "--per-category")
    assert rc == 0
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.751" in out
    assert "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.750" in out
    assert "cat3" in out and "no GT" in out
    rc, out, _ = cli(capsys, d / "gt.json", d / "res.json", "--json", "--out", d / "stats.json")
    stats = json.loads(out)
    assert rc == 0 and set(SUMMARY_KEYS) <= set(stats) and "per_category" in stats
    assert stats["AP"] == pytest.approx(AP_HAND, abs=1e-12)
    assert json.loads((d / "stats.json").read_text()) == stats


def test_plot_writes_png_atomically(files, capsys):
    d, _, _ = files
    rc, out, _ = cli(capsys, d / "gt.json", d / "res.json", "--plot", d / "plots" / "pr.png")
    assert rc == 0 and "wrote" in out
    png = (d / "plots" / "pr.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert [p.name for p in (d / "plots").iterdir()] == ["pr.png"]  # no temp file left


def test_long_videos_forms_agree(files, capsys):
    d, gt, _ = files
    (d / "ids.txt").write_text("2\n")
    (d / "ids.json").write_text("[2]")
    long_gt = dict(gt, videos=[v for v in gt["videos"] if v["id"] == 2])
    (d / "long.json").write_text(json.dumps(long_gt))
    got = []
    for spec in ("2", d / "ids.txt", d / "ids.json", d / "long.json"):
        rc, out, _ = cli(capsys, d / "gt.json", d / "res.json", "--json", "--long-videos", spec)
        assert rc == 0
        got.append(json.loads(out))
    # short = video 1 (AP 0.7), long = video 2 (AP 0.65): see test_eval.test_2022_short_long_split
    assert all(g == got[0] for g in got)
    assert got[0]["mAP_2022"] == pytest.approx(0.675, abs=1e-12)
    rc, _, err = cli(capsys, d / "gt.json", d / "res.json", "--long-videos", "2,9")
    assert rc == 2 and "long video id 9" in err
    (d / "bad.txt").write_text("2 three")
    rc, _, err = cli(capsys, d / "gt.json", d / "res.json", "--long-videos", d / "bad.txt")
    assert rc == 2 and "bad.txt" in err and "'three'" in err


def test_bad_inputs_exit_2_naming_the_file(files, capsys):
    d, _, res = files
    cases = {
        "missing.json": None,
        "malformed.json": "[{\"video_id\": 1,",
        "unknown_video.json": json.dumps([dict(res[0], video_id=77)]),
        "nan_score.json": json.dumps([dict(res[0], score="NaN")]).replace('"NaN"', "NaN"),
        "wrong_size.json": json.dumps([dict(res[0],
                                            segmentations=[encode(np.ones((3, 3), bool))] * 5)]),
    }
    expect = {"missing.json": "file not found", "malformed.json": "malformed JSON",
              "unknown_video.json": "unknown video id 77", "nan_score.json": "score",
              "wrong_size.json": "differs from video"}
    for name, text in cases.items():
        if text is not None:
            (d / name).write_text(text)
        rc, out, err = cli(capsys, d / "gt.json", d / name)
        assert rc == 2, name
        assert name in err and expect[name] in err, err
        assert "Traceback" not in err and out == ""


def test_subprocess_exit_codes_and_no_traceback(files):
    d, _, _ = files
    ok = run_cli("eval", d / "gt.json", d / "res.json", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["AP50"] == pytest.approx(1.0)
    (d / "broken.json").write_text("{nope")
    bad = run_cli("eval", d / "broken.json", d / "res.json")
    assert bad.returncode == 2
    assert "broken.json" in bad.stderr and "Traceback" not in bad.stderr
