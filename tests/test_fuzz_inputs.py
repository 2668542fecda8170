"""Fuzz test (issue 13): a few hundred seeded mutations of a small GT and results file.

Every case is loaded (``load_ytvis``, ``load_results``) and, when both load, scored with
``evaluate`` in this process, under a per-case time limit (SIGALRM). The only acceptable outcomes
are an accepted file or a clean :class:`InputError`; any other exception, or a case running past
its limit, fails the test with the seed and the mutation that caused it.
"""
import copy
import json
import math
import random
import signal
import time

import numpy as np
import pytest

from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.errors import InputError
from tubelet.eval import evaluate
from tubelet.structures import rle

H, W, T = 6, 7, 3
CASES = 300            # per file kind (GT / results): 600 in all
PER_CASE_S = 5.0       # a case normally takes milliseconds; a hang would be killed here

# values swapped into fields: wrong types, edge numbers, absurd sizes, nesting
HOSTILE = [None, True, False, 0, -1, 1, 2 ** 31, 2 ** 70, -2 ** 70, 0.5, -0.0, 1e12, -1e300,
           float("nan"), float("inf"), float("-inf"), "", "x", "0", "!!!!garbage~~~~", [], {},
           [None], [[]], [1, 2, 3], [[0, 0, 1e12, 1e12, 5, 0]], [[0, 0, float("nan"), 1, 2, 2]],
           {"size": [H, W], "counts": "4210"}, {"size": [H, W], "counts": [H * W + 5, -5]},
           {"size": [H, W], "counts": [1] * 3}, {"size": [H + 0.5, W], "counts": [H * W]},
           {"size": [100000, 100000], "counts": [10 ** 10]}, {"size": [H, W]}, {"counts": "0"},
           ["../../x/00000.jpg"] * T, ["/etc/passwd"] * T, [1] * T, [[[[[]]]]]]


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _mask(seed: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    r = seed % 3
    m[r:r + 3, 1 + r:4 + r] = 1
    return m


def _base_gt() -> dict:
    videos = [{"id": v, "width": W, "height": H, "length": T,
               "file_names": [f"v{v}/{t:05d}.jpg" for t in range(T)]} for v in (1, 2)]
    anns = [{"id": k + 1, "video_id": 1 + k % 2, "category_id": 1 + k % 2,
             "segmentations": [rle.encode(_mask(k + t)) if t != 1 else None for t in range(T)],
             "areas": [9.0, None, 9.0], "iscrowd": 0} for k in range(3)]
    anns[2]["segmentations"][1] = [[1, 1, 5, 1, 5, 4, 1, 4]]  # a polygon frame
    anns[2]["areas"] = None
    return {"videos": videos, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": anns}


def _base_results() -> list:
    return [{"video_id": 1 + k % 2, "category_id": 1 + k % 3 % 2, "score": 0.9 - 0.1 * k,
             "segmentations": [rle.encode(_mask(k + t)) for t in range(T)]} for k in range(4)]


def _paths(obj, prefix=()):
    """Every (container, key) position in a JSON tree."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((obj, k))
            out.extend(_paths(v))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((obj, i))
            out.extend(_paths(v))
    return out


def _mutate_tree(obj, rng: random.Random) -> str:
    """Apply 1-3 structural mutations; return a description."""
    done = []
    for _ in range(rng.randint(1, 3)):
        spots = _paths(obj)
        if not spots:
            break
        parent, key = rng.choice(spots)
        op = rng.choice(["value", "value", "delete", "duplicate", "counts", "wrap"])
        if op == "value":
            parent[key] = copy.deepcopy(rng.choice(HOSTILE))
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "counts" and isinstance(parent[key], str) and parent[key]:
            s = list(parent[key])
            s[rng.randrange(len(s))] = chr(rng.randrange(32, 127))
            parent[key] = "".join(s)
        else:
            parent[key] = [parent[key]]
        done.append(f"{op}@{key!r}")
    return ",".join(done)


def _mutate_text(text: str, rng: random.Random) -> tuple[str, str]:
    """Byte-level damage: truncation, a random character, or deep nesting."""
    op = rng.choice(["truncate", "char", "nest"])
    if op == "truncate":
        return text[:rng.randrange(len(text))], op
    if op == "char":
        i = rng.randrange(len(text))
        return text[:i] + chr(rng.randrange(32, 127)) + text[i + 1:], op
    return "[" * 100_000 + "]" * 100_000, op


def _benign(obj, rng: random.Random) -> str:
    """A valid change (so the fuzz also walks accepted files): another score, another known or
    unknown category (unknown result categories are ignored, as by the official evaluator), an
    empty frame, a dropped record."""
    recs = obj["annotations"] if isinstance(obj, dict) else obj
    k = rng.randrange(len(recs))
    op = rng.choice(["score", "category", "empty", "drop"])
    if op == "score" and "score" in recs[k]:
        recs[k]["score"] = rng.choice([0, 1, 0.0, 1e-9, rng.random()])
    elif op == "category":
        recs[k]["category_id"] = rng.choice([1, 2] if isinstance(obj, dict) else [1, 2, 99])
    elif op == "empty":
        t = rng.randrange(T)
        recs[k]["segmentations"][t] = None
        if recs[k].get("areas"):
            recs[k]["areas"][t] = None
    else:
        recs.pop(k)
    return f"benign {op}@{k}"


def _dump(obj) -> str:
    return json.dumps(obj, allow_nan=True)  # NaN / Infinity literals are part of the fuzz


def _run_case(tmp_path, gt_text: str, res_text: str) -> None:
    (tmp_path / "gt.json").write_text(gt_text)
    (tmp_path / "res.json").write_text(res_text)
    gt = load_ytvis(tmp_path / "gt.json")
    recs = load_results(tmp_path / "res.json", gt)
    stats = evaluate(gt, recs)
    assert all(isinstance(v, float) and (math.isfinite(v) or v == -1.0) or not isinstance(v, float)
               for v in dict(stats).values())


@pytest.mark.parametrize("kind", ["gt", "results"])
def test_fuzzed_files_load_cleanly_or_fail_cleanly(tmp_path, kind):
    rng = random.Random(13 if kind == "gt" else 1313)
    old = signal.signal(signal.SIGALRM, _alarm)
    outcomes = {"accepted": 0, "InputError": 0}
    t_start = time.time()
    try:
        for case in range(CASES):
            gt, res = _base_gt(), _base_results()
            r = rng.random()
            if r < 0.15:
                what = _benign(gt if kind == "gt" else res, rng)
                gt_text, res_text = _dump(gt), _dump(res)
            elif r < 0.3:
                text, what = _mutate_text(_dump(gt if kind == "gt" else res), rng)
                gt_text, res_text = (text, _dump(res)) if kind == "gt" else (_dump(gt), text)
            else:
                what = _mutate_tree(gt if kind == "gt" else res, rng)
                gt_text, res_text = _dump(gt), _dump(res)
            signal.setitimer(signal.ITIMER_REAL, PER_CASE_S)
            try:
                _run_case(tmp_path, gt_text, res_text)
                outcomes["accepted"] += 1
            except InputError as exc:
                assert len(str(exc)) < 2000, (case, what, str(exc)[:200])  # one readable line
                outcomes["InputError"] += 1
            except _Timeout:
                pytest.fail(f"{kind} case {case} ({what}) ran past {PER_CASE_S} s")
            except Exception as exc:  # noqa: BLE001 - exactly what the test hunts
                pytest.fail(f"{kind} case {case} ({what}): {type(exc).__name__}: {exc}"[:600])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    # the mutations must exercise both outcomes, or the fuzz tests nothing
    assert outcomes["accepted"] > 20 and outcomes["InputError"] > 100, outcomes
    assert time.time() - t_start < 60
