"""The library halves of `tubelet reduce` and `tubelet track`: tubelet.data.proposals and
tubelet.data.detections (the CLI ends are in test_reduce_track_cli.py)."""
import json
import math

import numpy as np
import pytest

from tubelet.data.detections import DetectionReader
from tubelet.data.proposals import PLAIN, PROPOSALS, parse_record, reduce_records, video_masks
from tubelet.errors import InputError
from tubelet.ops import ReduceConfig
from tubelet.structures import rle


def span(x0, x1, h=1, w=4):
    m = np.zeros((h, w), bool)
    m[:, x0:x1] = True
    return rle.encode(m)


A = [span(0, 2), span(0, 2)]
C = [span(0, 2), None]  # sequence IoU with A: 2 / (2 + 2) = 0.5


def test_reduce_records_category_aware():
    props = [{"video_id": 1, "segmentations": A, "category_scores": {"1": 0.9, "2": 0.3}},
             {"video_id": 1, "segmentations": A, "category_scores": {"1": 0.8}},  # duplicate
             {"video_id": 1, "segmentations": C, "category_scores": {"2": 0.6}},
             {"video_id": 2, "segmentations": [span(1, 3)], "category_scores": {"3": 0.02}}]
    res = reduce_records(props, "p.json", ReduceConfig())
    assert (res.kind, res.num_inputs, res.num_videos) == (PROPOSALS, 4, 2)
    got = sorted((r["video_id"], r["category_id"], round(r["score"], 6)) for r in res.records)
    # θ 0.9 drops the duplicate; class 2 keeps C (0.6) and A decayed by exp(-0.5^2 / 0.5)
    assert got == sorted([(1, 1, 0.9), (1, 2, 0.6), (1, 2, round(0.3 * math.exp(-0.5), 6)),
                          (2, 3, 0.02)])
    a = next(r for r in res.records if r["category_id"] == 1)
    assert a["segmentations"] == A


def test_parse_record_kinds_and_errors():
    assert parse_record({"video_id": 3, "segmentations": [], "category_id": 2, "score": 0.5},
                        0, "p", None) == (PLAIN, 3, {2: 0.5})
    assert parse_record({"video_id": 3, "segmentations": [], "category_scores": {"4": 1}},
                        0, "p", None) == (PROPOSALS, 3, {4: 1.0})
    with pytest.raises(InputError, match=r"records\[5\].*started with proposals"):
        parse_record({"video_id": 3, "segmentations": [], "category_id": 2, "score": 0.5},
                     5, "p", PROPOSALS)
    with pytest.raises(InputError, match="not a finite number"):
        parse_record({"video_id": 3, "segmentations": [], "category_scores": {"4": math.inf}},
                     0, "p", None)


def test_video_masks_take_the_size_from_the_first_mask():
    recs = [{"video_id": 1, "segmentations": [None, span(0, 1)]},
            {"video_id": 1, "segmentations": [span(0, 2, h=2), None]}]
    with pytest.raises(InputError, match=r"records\[1\].*mask size 2x4 differs from 1x4 of "
                                         r"records\[0\]\.segmentations\[1\]"):
        video_masks(recs, [0, 1], "p.json")
    recs[1]["segmentations"] = [{"size": [1, 4], "counts": "4210"}, None]
    with pytest.raises(InputError, match=r"records\[1\].*'segmentations\[0\]'.*sum to 9"):
        video_masks(recs, [0, 1], "p.json")
    recs[1]["segmentations"] = [[[0, 0, 1, 0, 1, 1]], None]
    with pytest.raises(InputError, match="polygon masks need the frame size"):
        video_masks(recs, [1], "p.json")


# ----------------------------------------------------------------------------- detections
def write_lines(path, lines):
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    return path


def frame(video, t, dets, h=1, w=4):
    return {"video_id": video, "frame": t, "height": h, "width": w, "detections": dets}


def test_reader_yields_frame_instances(tmp_path):
    d0 = {"segmentation": span(0, 2), "score": 0.9, "class_probs": {"7": 0.2, "5": 0.7}}
    d1 = {"segmentation": span(3, 4), "score": 0.4, "class_probs": {"7": 0.6}}
    p = write_lines(tmp_path / "d.jsonl", [frame(3, 0, [d0, d1]), frame(3, 1, []),
                                           frame(4, 0, [dict(d1, category_id=9)])])
    reader = DetectionReader(str(p))
    frames = list(reader)
    assert [(f.video_id, f.index, f.line) for f in frames] == [(3, 0, 1), (3, 1, 2), (4, 0, 3)]
    f0 = frames[0].instances
    assert reader.categories == [5, 7]  # sorted keys of the first class_probs
    assert f0.masks.tolist() == [[[True, True, False, False]], [[False, False, False, True]]]
    assert f0.scores.tolist() == [0.9, 0.4]
    assert f0.labels.tolist() == [5, 7]  # argmax column -> category id
    assert f0.class_probs.tolist() == [[0.7, 0.2], [0.0, 0.6]]
    assert len(frames[1].instances) == 0 and frames[1].instances.masks.shape == (0, 1, 4)
    assert frames[2].instances.labels.tolist() == [9]  # category_id wins over class_probs


@pytest.mark.parametrize("lines,kw,needle", [
    ([frame(1, 0, []), frame(1, 2, [])], {}, "line 2: field 'frame': expected frame 1"),
    ([frame(1, 0, []), frame(2, 0, []), frame(1, 1, [])], {}, "line 3: field 'video_id'"),
    ([frame(1, 0, [{"segmentation": span(0, 2), "score": 0.9, "category_id": 1}])],
     {"require": {"embeddings"}, "required_by": "tracker 'memory'"},
     "line 1: field 'detections[0].embedding': missing key (tracker 'memory' needs it)"),
    ([frame(1, 0, [{"segmentation": {"size": [1, 4], "counts": "!!"}, "score": 0.9,
                    "category_id": 1}])], {}, "detections[0].segmentation"),
    ([frame(1, 0, [], h=1, w=20000)], {}, "exceeds 16384"),
    ([frame(1, 0, [{"segmentation": span(0, 2), "score": 0.9, "class_probs": {"2": 0.5}}])],
     {"categories": [1]}, "not among the class columns [1]"),
])
def test_reader_errors_name_the_line(tmp_path, lines, kw, needle):
    p = write_lines(tmp_path / "d.jsonl", lines)
    with pytest.raises(InputError) as e:
        list(DetectionReader(str(p), **kw))
    assert needle in str(e.value) and str(p) in str(e.value)


def test_reader_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        list(DetectionReader(str(tmp_path / "nope.jsonl")))
