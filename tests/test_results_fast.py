"""The typed fast path of ``load_results`` (tubelet.data.results_fast) against the generic one.

By hand: what it returns for a small valid file, and that it declines (returns None) every form
it does not take. Against the generic path: the fuzz mutations of tests/test_fuzz_inputs.py, each
loaded both ways -- the same records, the same shared mask dicts, the same areas, or the same
error message.
"""
import json
import random

import numpy as np
import pytest

from tests.test_fuzz_inputs import (H, T, W, _base_gt, _base_results, _benign, _dump, _mask,
                                    _mutate_text, _mutate_tree)
from tubelet.data import results_fast, ytvis
from tubelet.data.ytvis import ResultRecords, load_ytvis, validate_results
from tubelet.errors import InputError
from tubelet.structures import rle
from tubelet.utils.fileio import read_json


@pytest.fixture()
def gt(tmp_path):
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(_base_gt()))
    return load_ytvis(p)


def _sharing(recs):
    """Each record's frames as the index of their mask dict's first appearance (None: null)."""
    ids = {}
    return [[None if s is None else ids.setdefault(id(s), len(ids)) for s in r["segmentations"]]
            for r in recs]


def test_valid_file_by_hand(gt):
    a, b = rle.encode(_mask(0)), rle.encode(_mask(1))  # 9 pixels each (3x3 squares)
    recs = [{"video_id": 1, "category_id": 2, "score": 1, "extra": [1, 2],
             "segmentations": [a, None, b]},
            {"video_id": 1, "category_id": 1, "score": 0.25, "segmentations": [b, b, a]},
            {"video_id": 2, "category_id": 99, "score": 0.5, "segmentations": [a, a, a]}]
    out = results_fast.fast_results(json.dumps(recs).encode(), gt, "r.json")
    assert out is not None
    out = ResultRecords(*out)
    assert [(r["video_id"], r["category_id"], r["score"]) for r in out] == [(1, 2, 1.0),
                                                                            (1, 1, 0.25)]
    assert type(out[0]["score"]) is float
    s0, s1 = out[0]["segmentations"], out[1]["segmentations"]
    assert s0[1] is None and s0[0] == {"size": [H, W], "counts": a["counts"]}
    assert s0[0] is s1[2] and s0[2] is s1[0] is s1[1]  # one dict per string of the file
    assert out.mask_areas == {a["counts"]: 9, b["counts"]: 9}  # 3x3 squares, by construction


@pytest.mark.parametrize("change", [
    lambda r: {"annotations": r},                              # another layout
    lambda r: r[0].update(segmentations=[[[1, 1, 4, 1, 4, 4]]] * T),  # polygons
    lambda r: r[0]["segmentations"].__setitem__(0, {"size": [H, W], "counts": [H * W]}),
    lambda r: r[0]["segmentations"].__setitem__(0, {"size": [H + 0.0, W], "counts": "0"}),
    lambda r: r[0]["segmentations"][0].__setitem__("size", [H + 1, W]),  # wrong frame size
    lambda r: r[0]["segmentations"].pop(),                     # a frame missing
    lambda r: r[0].update(score=-0.5),
    lambda r: r[0].update(score=True),
    lambda r: r[0].update(video_id=7),                         # unknown video
    lambda r: r[0].update(video_id=1.0),
    lambda r: r[0]["segmentations"][0].__setitem__("counts", "!!!!garbage~~~~"),
    lambda r: r[0]["segmentations"][2].__setitem__("counts", "4210"),  # runs do not sum to H*W
    lambda r: r[0].pop("score"),
])
def test_declines_what_it_does_not_take(gt, change):
    recs = _base_results()
    assert results_fast.fast_results(json.dumps(recs).encode(), gt, "r") is not None
    out = change(recs)
    recs = recs if out is None else out
    assert results_fast.fast_results(json.dumps(recs).encode(), gt, "r") is None


def test_unknown_categories_declined_when_they_are_errors(gt):
    recs = _base_results()
    recs[0]["category_id"] = 99
    data = json.dumps(recs).encode()
    assert results_fast.fast_results(data, gt, "r") is not None
    assert results_fast.fast_results(data, gt, "r", ignore_unknown_categories=False) is None


def _outcome(load):
    try:
        return load()
    except InputError as exc:
        return str(exc)


def test_fuzzed_results_load_the_same_both_ways(tmp_path, gt, monkeypatch):
    rng = random.Random(2026)
    taken = {"fast": 0}
    real = results_fast.fast_results

    def spy(*a, **k):
        out = real(*a, **k)
        taken["fast"] += out is not None
        return out

    monkeypatch.setattr(results_fast, "fast_results", spy)
    path = tmp_path / "res.json"
    counts = {"same records": 0, "same error": 0}
    for case in range(300):
        res = _base_results()
        r = rng.random()
        if r < 0.3:
            what = _benign(res, rng)
            text = _dump(res)
        elif r < 0.4:
            text, what = _mutate_text(_dump(res), rng)
        else:
            what = _mutate_tree(res, rng)
            text = _dump(res)
        if len(text) > 10_000:  # the deep-nesting case: both parsers refuse it, tested elsewhere
            continue
        path.write_text(text)
        monkeypatch.setattr(ytvis, "FAST_JSON_MIN_BYTES", 1 << 40)  # the generic path
        slow = _outcome(lambda: validate_results(read_json(path), gt, str(path)))
        monkeypatch.setattr(ytvis, "FAST_JSON_MIN_BYTES", 0)  # the fast path, then fallback
        fast = _outcome(lambda: ytvis.load_results(path, gt))
        if isinstance(slow, str):
            assert fast == slow, (case, what)
            counts["same error"] += 1
        else:
            assert not isinstance(fast, str), (case, what, fast)
            assert list(fast) == list(slow), (case, what)
            assert _sharing(fast) == _sharing(slow), (case, what)
            assert fast.mask_areas == slow.mask_areas, (case, what)
            counts["same records"] += 1
    # both outcomes exercised, and the fast path really taken (not always the fallback)
    assert counts["same records"] > 50 and counts["same error"] > 50, counts
    assert taken["fast"] > 50, taken


def test_load_results_of_a_large_file_takes_the_fast_path(tmp_path, gt, monkeypatch):
    recs = _base_results()
    p = tmp_path / "res.json"
    p.write_text(json.dumps(recs))
    seen = []
    real = results_fast.fast_results
    monkeypatch.setattr(results_fast, "fast_results",
                        lambda *a, **k: seen.append(1) or real(*a, **k))
    monkeypatch.setattr(ytvis, "FAST_JSON_MIN_BYTES", p.stat().st_size)
    out = ytvis.load_results(p, gt)
    assert seen == [1] and len(out) == len(recs)
    monkeypatch.setattr(ytvis, "FAST_JSON_MIN_BYTES", p.stat().st_size + 1)  # small: generic
    assert ytvis.load_results(p, gt) == out and seen == [1]
    areas = {s["counts"]: int(np.asarray(rle.decode(s)).sum())
             for r in recs for s in r["segmentations"]}
    assert out.mask_areas == areas
