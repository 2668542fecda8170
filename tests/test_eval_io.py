"""The fast loading path of ``tubelet eval``: JSON parsing (msgspec, with json as the judge),
one shared dict per repeated mask, the type check of uncompressed counts, and the vectorised
decode check of compressed counts against a slow reference on random and corrupt strings."""
from __future__ import annotations

import enum
import json
import math
import struct

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests.eval_cases import assert_close, make_results, random_case, reference_evaluate
from tests.test_data_segm import ref_decode
from tubelet.data.rle_counts import (MAX_RUN_CHARS, RleCountsCheck, _checked_areas, _runs_ok,
                                     counts_problem)
from tubelet.data.segm import check_segmentation
from tubelet.data.ytvis import load_results, load_ytvis, validate_results
from tubelet.errors import InputError
from tubelet.eval import evaluate
from tubelet.structures.rle import encode
from tubelet.utils import fileio
from tubelet.utils.fileio import read_json


# ------------------------------------------------------------------------------- read_json
def stdlib_read(path) -> object:
    """read_json as it was before msgspec: json.loads of the text, the same messages."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise InputError("file is empty", path=str(path))
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InputError(f"malformed JSON: {exc}", path=str(path)) from None
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply", path=str(path)) from None


def outcome(fn, path):
    try:
        return "ok", fn(path)
    except InputError as exc:
        return "error", str(exc)


def same(a, b) -> bool:
    """Equal values of the same types all the way down (floats bit for bit, NaN = NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _random_numbers(n: int = 3000) -> bytes:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        k = rng.random()
        if k < 0.3:  # any double, as repr writes it
            x = float(np.frombuffer(rng.bytes(8), np.float64)[0])
            out.append(repr(x) if math.isfinite(x) else "0.5")
        elif k < 0.6:  # long mantissas and wide exponents: rounding must be correct
            out.append(f"{rng.integers(0, 10**18)}{rng.integers(0, 10**18)}."
                       f"{rng.integers(0, 10**18)}e{rng.integers(-330, 300)}")
        elif k < 0.8:
            out.append("-0." + "".join(str(d) for d in rng.integers(0, 10, rng.integers(1, 40))))
        else:  # ints beyond 64 bits stay ints (orjson, for one, turns them into floats)
            out.append(("-" if rng.random() < 0.5 else "") + str(int(rng.integers(1, 10**18))
                                                                  * 10 ** int(rng.integers(0, 30))))
    return ("[" + ", ".join(out) + "]").encode()


JSON_CASES = {
    "plain": b'{"a": [1, 2.5, -0.0, 1e5, "x", null, true, false], "b": {"c": []}}',
    "numbers": _random_numbers(),
    "big_ints": b"[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]",
    "nan_inf": b'{"score": NaN, "s2": Infinity, "s3": -Infinity}',
    "out_of_range": b"[1e400, -1e400, 1e-400]",
    "lone_surrogate": b'["\\ud800", "\\ud83d\\ude00"]',
    "duplicate_keys": b'{"a": 1, "a": 2}',
    "invalid_utf8": b'["\xff\xfe", 1]',
    "bom": b'\xef\xbb\xbf[1]',
    "crlf": b'{\r\n"a": 1\r\n}\r\n',
    "empty": b"",
    "whitespace": b" \n\t ",
    "unicode_space": "\u3000".encode(),
    "truncated": b'[{"video_id": 1,',
    "trailing": b"[1] x",
    "control_char": b'["a\x01b"]',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "escapes": b'["\\u00e9\\n\\t\\"\\\\\\/", "\xc3\xa9"]',
}


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_read_json_gives_json_values_and_messages(tmp_path, monkeypatch, case):
    p = tmp_path / "x.json"
    p.write_bytes(JSON_CASES[case])
    want = outcome(stdlib_read, p)
    monkeypatch.setattr(fileio, "FAST_JSON_MIN_BYTES", 0)  # msgspec for every file
    got = outcome(read_json, p)
    assert got[0] == want[0] and same(got[1], want[1]), (got, want)
    monkeypatch.setattr(fileio, "_fast_json", None)  # without msgspec: the json path alone
    got = outcome(read_json, p)
    assert got[0] == want[0] and same(got[1], want[1])


def test_read_json_uses_the_fast_parser_on_big_files(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    recs = [{"video_id": 1, "score": 0.25, "segmentations": [None, {"counts": "x" * 999}]}]
    p.write_text(json.dumps(recs * (1 + fileio.FAST_JSON_MIN_BYTES // 1000)))

    def no_fallback(path):
        raise AssertionError("fell back to json")

    monkeypatch.setattr(fileio, "_parse_json_text", no_fallback)
    assert read_json(p)[-1] == recs[0]
    assert fileio._fast_json is not None  # msgspec is a dependency, and was imported


# ------------------------------------------------------------------------------- shared masks
def _two_video_gt():
    # two videos of 20 pixels each, 4x5 and 5x4: one counts string can be valid for both
    return {"videos": [{"id": 1, "height": 4, "width": 5, "length": 2},
                       {"id": 2, "height": 5, "width": 4, "length": 2}],
            "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)], "annotations": []}


def test_repeated_masks_share_one_dict_of_the_right_size(tmp_path):
    counts = mask_utils.frPyObjects({"size": [4, 5], "counts": [3, 7, 10]}, 4, 5)
    counts = counts["counts"].decode()  # 3 zeros, 7 ones, 10 zeros: valid for any 20 pixels
    other = encode(np.eye(4, 5, dtype=bool))["counts"]
    recs = [{"video_id": v, "category_id": c, "score": 0.5,
             "segmentations": [{"size": list(hw), "counts": counts},
                               {"size": list(hw), "counts": other if v == 1 else counts}]}
            for v, hw in ((1, (4, 5)), (2, (5, 4))) for c in (1, 2, 3)]
    (tmp_path / "r.json").write_text(json.dumps(recs))
    gt = load_ytvis(_two_video_gt())
    out = load_results(tmp_path / "r.json", gt)  # parsed: every mask is its own object
    assert [r["segmentations"] for r in out] == [r["segmentations"] for r in recs]
    v1, v2 = out[:3], out[3:]
    for a in (v1, v2):  # one dict per (string, frame size), shared by the records
        assert all(r["segmentations"][0] is a[0]["segmentations"][0] for r in a)
        assert all(r["segmentations"][1] is a[0]["segmentations"][1] for r in a)
    assert v1[0]["segmentations"][0] == {"size": [4, 5], "counts": counts}
    assert v2[0]["segmentations"][0] == {"size": [5, 4], "counts": counts}
    assert v2[0]["segmentations"][1] is v2[0]["segmentations"][0]  # same string, same size
    # in-memory records: the caller's dicts are never returned (nor changed)
    before = json.dumps(recs)
    mem = validate_results(recs, gt)
    assert all(m is not s for r, q in zip(mem, recs)
               for m, s in zip(r["segmentations"], q["segmentations"]))
    assert json.dumps(recs) == before
    # a second file gets its own dicts
    again = load_results(tmp_path / "r.json", gt)
    assert again[0]["segmentations"][0] is not out[0]["segmentations"][0]


@pytest.mark.parametrize("seed", [5, 9, 12])
def test_multi_class_records_from_a_file_match_the_reference(tmp_path, seed):
    """Each prediction reported under up to three categories with the same masks (as
    Mask2Former-style methods do), loaded from JSON: the shared-dict path against the slow
    dense reference evaluator."""
    gt, preds = random_case(seed)
    rng = np.random.default_rng(seed)
    multi = []
    for p in preds:
        for c in rng.permutation([1, 2, 3])[:int(rng.integers(1, 4))].tolist():
            multi.append(dict(p, category_id=c, score=round(float(rng.random()), 2)))
    res = make_results(multi)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    g = load_ytvis(tmp_path / "gt.json")
    assert_close(evaluate(g, load_results(tmp_path / "res.json", g)),
                 reference_evaluate(gt, res))


# ------------------------------------------------------------------------------- uncompressed
class Level(enum.IntEnum):
    THREE = 3


@pytest.mark.parametrize("counts,ok", [
    ([3, 7, 10], True),
    ([Level.THREE, 7, 10], True),  # an int subclass is an int (as before the fast type check)
    ([3, 7, 10.0], False),
    ([True, 9, 10], False),       # a bool is not
    ([3, "7", 10], False),
    ([3, None, 17], False),
])
def test_uncompressed_counts_must_be_ints(counts, ok):
    seg = {"size": [4, 5], "counts": counts}
    if ok:
        want = mask_utils.frPyObjects({"size": [4, 5], "counts": [3, 7, 10]}, 4, 5)
        got = check_segmentation(seg, (4, 5), "gt.json", "annotations[0]", "segmentations[0]")
        assert got == {"size": [4, 5], "counts": want["counts"].decode()}
    else:
        with pytest.raises(InputError, match=r"gt.json.*annotations\[0\].*must be ints"):
            check_segmentation(seg, (4, 5), "gt.json", "annotations[0]", "segmentations[0]")


# ------------------------------------------------------------------------------- counts decoding
def ref_encode(runs: list[int]) -> str:
    """Slow COCO counts encoder (pycocotools' rleToString) of any ints, negative ones too."""
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not ((c & 0x10) == 0 and x == 0 or (c & 0x10) and x == -1)
            out.append(chr(48 + (c | (0x20 if more else 0))))
    return "".join(out)


def ref_malformed(s: str) -> bool:
    """True when ``s`` cannot be read as runs at all (slow, obvious)."""
    if not s or any(not 48 <= ord(ch) <= 111 for ch in s):
        return True
    if ord(s[-1]) - 48 & 0x20:  # the last character continues a run
        return True
    n = 0
    for ch in s:  # no run of more than MAX_RUN_CHARS characters
        n = n + 1 if ord(ch) - 48 & 0x20 else 0
        if n >= MAX_RUN_CHARS:
            return True
    return False


def ref_problem(s: str, total: int) -> bool:
    """True when ``s`` is not a valid counts string of ``total`` pixels (slow, obvious)."""
    if ref_malformed(s):
        return True
    runs = ref_decode(s)  # Python ints: no wrap-around
    return min(runs) < 0 or sum(runs) != total


def _corrupt(rng, s: str) -> str:
    k = rng.integers(0, 6)
    s = list(s)
    if k == 0 and s:  # one character changed within the alphabet
        s[rng.integers(0, len(s))] = chr(int(rng.integers(48, 112)))
    elif k == 1 and len(s) > 1:  # truncated
        s = s[:rng.integers(1, len(s))]
    elif k == 2:  # a character inserted
        s.insert(int(rng.integers(0, len(s) + 1)), chr(int(rng.integers(48, 112))))
    elif k == 3 and s:  # a character outside the alphabet
        s[rng.integers(0, len(s))] = chr(int(rng.choice([32, 47, 112, 126, 233])))
    elif k == 4:  # a long continuation
        s.insert(int(rng.integers(0, len(s) + 1)), "P" * int(rng.integers(4, 8)))
    return "".join(s)


def _random_runs(rng, total: int) -> list[int]:
    """Runs summing to ``total`` (valid), or with a negative run / a huge run / a wrong sum,
    including runs whose int32 sum wraps around to exactly ``total``."""
    cuts = np.sort(rng.integers(0, total + 1, int(rng.integers(0, 8))))
    runs = np.diff(np.r_[0, cuts, total]).tolist()
    k = rng.integers(0, 5)
    if k == 1 and len(runs) > 1:  # a negative run, the sum still right
        runs[int(rng.integers(0, len(runs) - 1))] = -int(rng.integers(1, 50))
        runs[-1] = total - sum(runs[:-1])
    elif k == 2:  # eight runs of 2^29 - 1 (6 characters each at most): 2^32 + total in all,
        a = (1 << 29) - 1  # which is total again in int32 arithmetic
        runs = [0] + [a, 0] * 7 + [a, total + 8]
    elif k == 3:  # off by one
        runs[-1] += int(rng.choice([-1, 1]))
    return runs


def test_counts_check_agrees_with_the_reference_on_random_and_corrupt_strings():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(1000):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        total = h * w
        if rng.random() < 0.5:  # a real mask's string
            m = rng.random((h, w)) < rng.random()
            s = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()
        else:  # a string of chosen runs
            s = ref_encode(_random_runs(rng, total))
        if rng.random() < 0.5:
            s = _corrupt(rng, s)
        cases.append((s, total, ref_problem(s, total)))
    bad = sum(b for _, _, b in cases)
    assert 200 < bad < 800  # both kinds are well represented
    for s, total, is_bad in cases:  # one at a time
        assert (counts_problem(s, total) is not None) == is_bad, (s, total)
    readable = [c for c in cases if not ref_malformed(c[0])]  # bad by their runs alone
    assert sum(b for _, _, b in readable) > 100
    for group in (cases, readable):  # in vectorised batches
        for i in range(0, len(group), 4):
            batch = group[i:i + 4]
            strings, totals = [s for s, _, _ in batch], [t for _, t, _ in batch]
            ok = not any(b for _, _, b in batch)
            assert _runs_ok(strings, totals) == ok, batch
            if ok:  # the areas come with the check: the sums of the odd runs
                assert _checked_areas(strings, totals).tolist() \
                    == [sum(ref_decode(s)[1::2]) for s in strings]
    # the batch check names the first bad string in order
    batch = cases[:200]
    first = next(j for j, (_, _, b) in enumerate(batch) if b)
    with pytest.raises(InputError, match=rf"f\.json: r{first}: "):
        with RleCountsCheck() as check:
            for j, (s, total, _) in enumerate(batch):
                check.add(s, total, "f.json", f"r{j}", "segmentations[0]")


# ------------------------------------------------------------------------------- areas reused
def test_loaders_keep_the_area_of_every_string():
    gt, preds = random_case(2, big=True)
    g = load_ytvis(gt)
    recs = load_results(make_results(preds), g)
    for known, segs in ((g.mask_areas, [s for a in g.annotations for s in a.segmentations]),
                        (recs.mask_areas, [s for r in recs for s in r["segmentations"]])):
        segs = [s for s in segs if s is not None]
        assert segs and {s["counts"] for s in segs} <= set(known)
        assert all(known[s["counts"]] == int(mask_utils.area(s)) for s in segs)


def test_frame_areas_with_some_areas_known():
    from tubelet.eval.video_iou import frame_areas
    rng = np.random.default_rng(4)
    dense = [[None if rng.random() < 0.3 else rng.random((6, 7)) < rng.random()
              for _ in range(5)] for _ in range(4)]
    tracks = [[None if m is None else encode(m) for m in tr] for tr in dense]
    want = np.array([[0 if m is None else int(m.sum()) for m in tr] for tr in dense])
    strings = [s["counts"] for tr in tracks for s in tr if s is not None]
    some = {c: want_a for c, want_a in zip(strings[::2], [
        int(m.sum()) for tr in dense for m in tr if m is not None][::2])}
    for known in (None, {}, some, {c: int(mask_utils.area({"size": [6, 7], "counts": c}))
                                   for c in strings}):
        assert np.array_equal(frame_areas(tracks, 5, known), want)
    assert frame_areas(tracks, 5, {c: 10 ** 6 for c in strings}).max() == 10 ** 6  # used


def test_records_changed_after_loading_are_scored_by_their_masks():
    gt, preds = random_case(7)
    res = make_results(preds)
    g = load_ytvis(gt)
    recs = load_results(res, g)
    assert isinstance(recs, list) and recs == validate_results(res, g)
    # a mask replaced after validation by one the loader never saw: measured, not looked up
    i = next(i for i, r in enumerate(recs) if r["segmentations"][0] is not None)
    h, w = recs[i]["segmentations"][0]["size"]
    new = encode(np.eye(h, w, dtype=bool))
    assert new["counts"] not in recs.mask_areas
    recs[i] = dict(recs[i], segmentations=[new] + recs[i]["segmentations"][1:])
    res[i] = dict(res[i], segmentations=recs[i]["segmentations"])
    assert_close(evaluate(g, recs), reference_evaluate(gt, res))


def test_result_records_pickle_and_evaluator_keeps_areas():
    import pickle

    from tubelet.eval import YTVISEvaluator
    gt, preds = random_case(3, big=True)
    res = make_results(preds)
    g = load_ytvis(gt)
    recs = load_results(res, g)
    back = pickle.loads(pickle.dumps(recs))
    assert back == recs and back.mask_areas == recs.mask_areas
    ev = YTVISEvaluator(g)
    ev.process(res[: len(res) // 2])
    ev.process(res[len(res) // 2:])
    assert set(ev._records.mask_areas) == set(recs.mask_areas)
    assert ev.evaluate() == evaluate(g, recs)


@pytest.mark.parametrize("bad_first", [True, False])
def test_errors_in_frame_order_between_fast_and_slow_entries(bad_first):
    """A bad string is checked in a batch, later than a structural error found at once: the
    error reported is still the first in the file."""
    good = encode(np.eye(4, 5, dtype=bool))
    bad_string = {"size": [4, 5], "counts": "4210"}   # runs sum to 9, not 20
    wrong_size = {"size": [3, 3], "counts": encode(np.eye(3, 3, dtype=bool))["counts"]}
    segs = [good, bad_string, wrong_size] if bad_first else [good, wrong_size, bad_string]
    gt = load_ytvis({"videos": [{"id": 1, "height": 4, "width": 5, "length": 3}],
                     "categories": [{"id": 1, "name": "a"}], "annotations": []})
    recs = [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [good] * 3},
            {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": segs}]
    want = r"results\[1\]: field 'segmentations\[1\]': " + (
        "unreadable mask: RLE runs sum to 9" if bad_first else "mask size 3x3 differs")
    with pytest.raises(InputError, match=want):
        validate_results(recs, gt, "r.json")
