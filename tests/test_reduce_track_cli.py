"""``tubelet reduce`` and ``tubelet track`` end to end on tiny files."""
import json
import math

import numpy as np
import pytest

from tests.conftest import run_cli
from tubelet.cli.main import main
from tubelet.data.ytvis import load_results, load_ytvis, save_ytvis
from tubelet.structures import rle

H, W = 1, 4


def span(x0, x1):
    m = np.zeros((H, W), bool)
    m[:, x0:x1] = True
    return rle.encode(m)


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def gt_file(tmp_path, lengths, size=(H, W), cats=(1, 2, 3)):
    ds = {"videos": [{"id": v, "width": size[1], "height": size[0], "length": n,
                      "file_names": [f"v{v}/{t:05d}.jpg" for t in range(n)]}
                     for v, n in lengths.items()],
          "categories": [{"id": c, "name": f"c{c}"} for c in cats], "annotations": []}
    p = tmp_path / "gt.json"
    save_ytvis(p, ds)
    return p


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ------------------------------------------------------------------ reduce
A = [span(0, 2), span(0, 2)]
C = [span(0, 2), None]  # sequence IoU with A: 2 / (2 + 2) = 0.5
PROPOSALS = [
    {"video_id": 1, "segmentations": A, "category_scores": {"1": 0.9, "2": 0.3}},
    {"video_id": 1, "segmentations": A, "category_scores": {"1": 0.8}},  # duplicate of A
    {"video_id": 1, "segmentations": C, "category_scores": {"2": 0.6}},
    {"video_id": 2, "segmentations": [span(1, 3)], "category_scores": {"3": 0.02}},
]


def _recs(path):
    return sorted(((r["video_id"], r["category_id"], round(r["score"], 6))
                   for r in json.loads(path.read_text())), key=lambda x: (x[0], -x[2]))


def test_reduce_proposals_category_aware(tmp_path, capsys):
    src, out = write(tmp_path / "p.json", PROPOSALS), tmp_path / "out.json"
    rc, o, _ = cli(capsys, "reduce", src, out)
    assert rc == 0 and "4 proposals in 2 videos -> 4 records" in o
    # agnostic θ 0.9 drops the duplicate; class 2: C (0.6) first, A decayed by exp(-0.5^2/0.5)
    want = [(1, 1, 0.9), (1, 2, 0.6), (1, 2, round(0.3 * math.exp(-0.5), 6)), (2, 3, 0.02)]
    assert _recs(out) == want
    recs = load_results(out, load_ytvis(gt_file(tmp_path, {1: 2, 2: 1})))
    assert len(recs) == 4 and all(len(r["segmentations"]) == (2 if r["video_id"] == 1 else 1)
                                  for r in recs)


def test_reduce_no_aware_and_options(tmp_path, capsys):
    src, out = write(tmp_path / "p.json", PROPOSALS), tmp_path / "out.json"
    # without the aware step: θ 0.5 also drops C (IoU 0.5 >= 0.5); output needs > 0.05
    assert cli(capsys, "reduce", src, out, "--no-aware")[0] == 0
    assert _recs(out) == [(1, 1, 0.9), (1, 2, 0.3)]
    assert cli(capsys, "reduce", src, out, "--method", "linear", "--aware-iou", "0.5")[0] == 0
    assert (1, 2, 0.15) in _recs(out)  # 0.3 * (1 - 0.5)
    assert cli(capsys, "reduce", src, out, "--score-thr", "0.05", "--max-per-class", "1")[0] == 0
    assert _recs(out) == [(1, 1, 0.9), (1, 2, 0.6)]


def test_reduce_plain_results_per_category(tmp_path, capsys):
    plain = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": A},
             {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": A},  # same mask
             {"video_id": 1, "category_id": 2, "score": 0.4, "segmentations": A}]  # other class
    src, out = write(tmp_path / "r.json", plain), tmp_path / "out.json"
    rc, o, _ = cli(capsys, "reduce", src, out)
    assert rc == 0 and "result records" in o
    assert _recs(out) == [(1, 1, 0.9), (1, 2, 0.4)]


@pytest.mark.parametrize("mutate,needle", [
    (lambda p: p[2]["category_scores"].update({"2": float("nan")}),
     "records[2]: field 'category_scores[2]': not a finite number"),
    (lambda p: p[1].pop("segmentations"), "records[1]: field 'segmentations': missing key"),
    (lambda p: p[2].update(segmentations=[rle.encode(np.ones((2, 4), bool)), None]),
     "records[2]: field 'segmentations[0]': mask size 2x4 differs from 1x4"),
    (lambda p: p[2].update(segmentations=[None]), "records[2]: field 'segmentations': has 1 frames"),
    (lambda p: p[3].pop("category_scores"), "records[3]: field 'category_id'"),
    (lambda p: p[0].update(video_id="a"), "records[0]: field 'video_id': expected an integer"),
])
def test_reduce_bad_input(tmp_path, capsys, mutate, needle):
    props = json.loads(json.dumps(PROPOSALS))
    mutate(props)
    src, out = tmp_path / "p.json", tmp_path / "out.json"
    src.write_text(json.dumps(props))  # json.dumps writes NaN, as careless producers do
    rc, _, err = cli(capsys, "reduce", src, out)
    assert rc == 2 and str(src) in err and needle in err, err
    assert not out.exists()


def test_reduce_checks_against_gt(tmp_path, capsys):
    src, out = write(tmp_path / "p.json", PROPOSALS), tmp_path / "out.json"
    rc, _, err = cli(capsys, "reduce", src, out, "--gt", gt_file(tmp_path, {1: 2}))
    assert rc == 2 and "unknown video id 2" in err
    rc, _, err = cli(capsys, "reduce", src, out, "--gt", gt_file(tmp_path, {1: 2, 2: 1}, cats=(1, 2)))
    assert rc == 2 and "records[3]" in err and "unknown category id 3" in err
    rc, _, err = cli(capsys, "reduce", src, out, "--gt", gt_file(tmp_path, {1: 3, 2: 1}))
    assert rc == 2 and "has 2 frames; video 1 has 3" in err
    assert cli(capsys, "reduce", src, out, "--gt", gt_file(tmp_path, {1: 2, 2: 1}))[0] == 0


# ------------------------------------------------------------------ track
def det(x0, x1, score=0.9, cat=1, **extra):
    return {"segmentation": span(x0, x1), "score": score, "category_id": cat, **extra}


def jsonl(path, lines):
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def frames(video, n, dets_fn):
    return [{"video_id": video, "frame": t, "height": H, "width": W, "detections": dets_fn(t)}
            for t in range(n)]


@pytest.mark.parametrize("name,extra", [
    ("greedy", {}), ("naive", {}),
    ("memory", {"embedding": [1.0, 0.0], "class_probs": {"1": 0.7, "2": 0.2}}),
    ("iai", {"id_probs": [0.9, 0.1]}),
])
def test_track_every_tracker(tmp_path, capsys, name, extra):
    def dets(t):
        d = det(0, 2, 0.8, **extra)
        if name == "iai" and t == 0:
            d["id_probs"] = [0.0, 1.0]  # "new" in the first frame
        return [d]
    src = jsonl(tmp_path / "d.jsonl", frames(7, 5, dets) + frames(9, 5, dets))
    out = tmp_path / "out.json"
    rc, o, _ = cli(capsys, "track", src, out, "--tracker", name)
    assert rc == 0 and "10 frames in 2 videos" in o
    recs = load_results(out, load_ytvis(gt_file(tmp_path, {7: 5, 9: 5})))
    assert {r["video_id"] for r in recs} == {7, 9}
    for r in recs:
        assert all(s is not None for s in r["segmentations"])
    if name == "memory":  # mean class distribution: 0.7 for category 1, 0.2 for 2
        assert sorted((r["category_id"], round(r["score"], 6)) for r in recs if r["video_id"] == 7) \
            == [(1, 0.7), (2, 0.2)]
    if name == "greedy":
        assert [(r["category_id"], r["score"]) for r in recs] == [(1, 0.8), (1, 0.8)]


def test_track_overrides(tmp_path, capsys):
    src = jsonl(tmp_path / "d.jsonl", frames(1, 3, lambda t: [det(0, 2, 0.65)]))
    out = tmp_path / "out.json"
    assert cli(capsys, "track", src, out, "--tracker", "greedy", "min_valid_frames=2")[0] == 0
    assert len(json.loads(out.read_text())) == 1  # 3 > 2 valid frames
    assert cli(capsys, "track", src, out, "--tracker", "greedy")[0] == 0
    assert json.loads(out.read_text()) == []  # default needs > 3
    rc, _, err = cli(capsys, "track", src, out, "--tracker", "greedy", "gamma=0.1")
    assert rc == 2 and "unknown key 'gamma'" in err
    rc, _, err = cli(capsys, "track", src, out, "--tracker", "greedy", "gate_thr=abc")
    assert rc == 2 and "gate_thr" in err
    rc, _, err = cli(capsys, "track", src, out, "--tracker", "sort")
    assert rc == 2 and "unknown tracker 'sort'" in err
    # overrides may also come before --tracker
    assert cli(capsys, "track", src, out, "min_valid_frames=2", "--tracker", "greedy")[0] == 0
    assert len(json.loads(out.read_text())) == 1


@pytest.mark.parametrize("lines,needle", [
    (["{\"video_id\": 1,"], "line 1: malformed JSON"),
    ([{"video_id": 1, "frame": 0, "height": 1, "width": 4, "detections": [det(0, 2)]},
      {"video_id": 1, "frame": 2, "height": 1, "width": 4, "detections": []}],
     "line 2: field 'frame': expected frame 1 of video 1, got 2"),
    ([{"video_id": 1, "frame": 0, "height": 1, "width": 4, "detections": []},
      {"video_id": 2, "frame": 0, "height": 1, "width": 4, "detections": []},
      {"video_id": 1, "frame": 1, "height": 1, "width": 4, "detections": []}],
     "line 3: field 'video_id': video 1 appears again"),
    ([{"video_id": 1, "frame": 0, "height": 1, "width": 4,
       "detections": [{"segmentation": span(0, 2), "score": float("nan"), "category_id": 1}]}],
     "line 1: field 'detections[0].score': not a finite number"),
    ([{"video_id": 1, "frame": 0, "height": 2, "width": 4, "detections": [det(0, 2)]}],
     "line 1: field 'detections[0].segmentation': mask size 1x4 differs"),
    ([{"video_id": 1, "frame": 0, "height": 1, "width": 4, "detections": [det(0, 2)]},
      {"video_id": 1, "frame": 1, "height": 2, "width": 4, "detections": []}],
     "line 2: frame 1 is 2x4"),
    ([{"video_id": 1, "frame": 0, "height": 1, "width": 4,
       "detections": [{"segmentation": span(0, 2), "score": 0.9}]}],
     "line 1: field 'detections[0].category_id': missing key"),
])
def test_track_bad_input(tmp_path, capsys, lines, needle):
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out.json"
    rc, _, err = cli(capsys, "track", src, out, "--tracker", "greedy")
    assert rc == 2 and str(src) in err and needle in err, err
    assert not out.exists()


def test_track_requires_tracker_fields(tmp_path, capsys):
    src = jsonl(tmp_path / "d.jsonl", frames(1, 2, lambda t: [det(0, 2)]))
    rc, _, err = cli(capsys, "track", src, tmp_path / "o.json", "--tracker", "memory")
    assert rc == 2 and "line 1: field 'detections[0].embedding'" in err
    rc, _, err = cli(capsys, "track", src, tmp_path / "o.json", "--tracker", "iai")
    assert rc == 2 and "detections[0].id_probs" in err
    bad = jsonl(tmp_path / "b.jsonl", frames(1, 2, lambda t: [det(0, 2, class_probs={"1": 0.5})]
                                             if t == 0 else [det(0, 2, class_probs={"4": 0.5})]))
    rc, _, err = cli(capsys, "track", bad, tmp_path / "o.json", "--tracker", "greedy")
    assert rc == 2 and "line 2" in err and "--categories" in err
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    rc, _, err = cli(capsys, "track", empty, tmp_path / "o.json", "--tracker", "greedy")
    assert rc == 2 and "no frames" in err


def test_cli_subprocess_exit_codes(tmp_path):
    src = jsonl(tmp_path / "d.jsonl", frames(1, 4, lambda t: [det(0, 2)]))
    r = run_cli("track", src, tmp_path / "o.json", "--tracker", "greedy")
    assert r.returncode == 0, r.stderr
    r = run_cli("reduce", tmp_path / "missing.json", tmp_path / "o2.json")
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr
