"""Time ``tubelet eval GT RES --json`` end to end (process start to exit) on written-out files.

    python bench/eval_cli_speed.py [--videos 302] [--seed 0] [--repeat 5] [--distinct-masks]
                                   [--gt-uncompressed] [--keep DIR | --data DIR]
                                   [--compare-src OLD/src] [--no-official]

Generates the YouTube-VIS-2019-val-sized synthetic set of ``bench/eval_speed.py`` (302 videos,
~13k multi-class result records), writes the ground truth and the results as JSON files
(``json.dump``, default separators, as most producers write them) into a temporary folder (or
``--keep DIR``), then runs ``python -m tubelet eval GT RES --json`` as a subprocess ``--repeat``
times and reports the best wall time and the best CPU time (user + system of the child, from
``getrusage``; on a shared machine the wall time includes waiting for a core).

Checks, each failing the run (exit 1) when numbers differ:

- the CLI's numbers equal those of an in-process ``evaluate()`` on the in-memory dicts (no JSON
  files involved), every key and every per-category AP, bit for bit;
- ``--compare-src OLD/src``: the same command with ``PYTHONPATH=OLD/src`` (e.g. the previous
  commit, unpacked with ``git archive HEAD src | tar -x -C /tmp/old``) is timed the same way and
  must print identical numbers: before/after timings from one run;
- the official evaluator, when importable: the youtubevos fork of cocoapi
  (``pycocotools.ytvos`` / ``pycocotools.ytvoseval``). **No PyPI package ships it** (checked:
  ``ytvostools``, ``youtube-vis``, ``ytvis-api``, ``pycocotools-ytvis`` do not exist, and no
  package of the PyPI index names YouTube-VIS / ytvos): it exists only as the source of that
  fork, built over ``pycocotools``, so this check normally reports ``"official": null``. If it is
  importable, or with ``--official-src DIR``, it is run as a subprocess on the same files (with
  the numpy-2 shims it needs: ``np.float``, an int ``num`` for ``np.linspace``), timed the same
  way, and its 12 numbers must equal tubelet's to 1e-12. ``--official-src DIR``: a folder with
  the official ``ytvis.py`` and ``ytviseval.py``. One source on PyPI: the mmdet 3.x wheel carries
  both, marked "Copied from https://github.com/youtubevos/cocoapi" (``pip download --no-deps
  mmdet==3.3.0``, then ``unzip mmdet-3.3.0-py3-none-any.whl 'mmdet/evaluation/functional/ytvis*'``
  and pass ``mmdet/evaluation/functional``). Nothing of it is part of tubelet; it is only run.
  The numbers of tubelet against a slow, obviously-correct evaluator are checked by the tests
  (``tests/test_eval_reference.py``).

Also reports ``startup_s`` (``tubelet eval --help``: interpreter, imports, argument parsing)
and ``heavy_imports``, the modules of a heavy package (torch, matplotlib, scipy, PyAV, PIL,
yaml, cv2, numpy.ma) that ``tubelet eval`` imported (``python -X importtime``): none expected.

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_speed import make_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "torchvision", "matplotlib", "scipy", "av", "PIL", "yaml", "cv2"}
SUMMARY = ("AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l",
           "AR1", "AR10", "AR100", "AR_s", "AR_m", "AR_l")

# The official evaluator, run in its own process. Shims for numpy >= 1.24 / 2 (EVAL_NOTES,
# "Known defects"): np.float is gone, np.linspace wants an int num. matplotlib is not needed.
_OFFICIAL = r"""
import json, sys, numpy as np
np.float = float
_linspace = np.linspace
np.linspace = lambda a, b, num=50, *k, **kw: _linspace(a, b, int(round(num)), *k, **kw)
if len(sys.argv) > 3:  # a folder holding ytvis.py / ytviseval.py (the mmdet 3.x copy)
    sys.path.insert(0, sys.argv[3])
    from ytvis import YTVIS as YTVOS
    from ytviseval import YTVISeval as YTVOSeval
else:
    from pycocotools.ytvos import YTVOS
    from pycocotools.ytvoseval import YTVOSeval
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    gt = YTVOS(sys.argv[1])
    dt = gt.loadRes(sys.argv[2])
    ev = YTVOSeval(gt, dt, "segm")
    ev.evaluate(); ev.accumulate(); ev.summarize()
print(json.dumps([float(x) for x in ev.stats]))
"""


def official_available(src: str | None = None) -> bool:
    code = "import pycocotools.ytvos, pycocotools.ytvoseval"
    if src:
        code = f"import sys; sys.path.insert(0, {src!r}); import ytvis, ytviseval"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def time_command(cmd: list[str], repeat: int, env: dict | None = None
                 ) -> tuple[float, float, str]:
    """Best wall and best child CPU (user + sys) seconds over ``repeat`` runs; last stdout."""
    best, best_cpu, out = math.inf, math.inf, ""
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr}")
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        best, best_cpu, out = min(best, wall), min(best_cpu, cpu), proc.stdout
    return best, best_cpu, out


def differences(a: dict, b: dict, tol: float = 0.0) -> list[str]:
    """Keys (summary and per-category) whose values differ by more than ``tol``."""
    out = [k for k in SUMMARY if not abs(a[k] - b[k]) <= tol]
    pa, pb = a.get("per_category", {}), b.get("per_category", {})
    if pa.keys() != pb.keys():
        out.append("per_category keys")
    else:
        out += [f"per_category[{k}]" for k in pa if not abs(pa[k] - pb[k]) <= tol]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=302)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    ap.add_argument("--distinct-masks", action="store_true",
                    help="every record gets its own masks (no mask shared between records)")
    ap.add_argument("--gt-uncompressed", action="store_true",
                    help="write the GT masks as uncompressed RLE (counts a list of ints), as the "
                         "official YouTube-VIS files are")
    ap.add_argument("--keep", metavar="DIR", default=None,
                    help="write gt.json / results.json here and keep them (default: a temp dir)")
    ap.add_argument("--data", metavar="DIR", default=None,
                    help="time existing DIR/gt.json and DIR/results.json instead of generating")
    ap.add_argument("--compare-src", metavar="SRC", default=None,
                    help="also time another tubelet source tree (PYTHONPATH=SRC), check numbers")
    ap.add_argument("--no-official", action="store_true", help="skip the official evaluator")
    ap.add_argument("--official-src", metavar="DIR", default=None,
                    help="a folder holding the official code as ytvis.py + ytviseval.py, e.g. "
                         "the verbatim copy inside the mmdet 3.x wheel (see the docstring)")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from tubelet.data.ytvis import load_results, load_ytvis
    from tubelet.eval import evaluate

    t0 = time.perf_counter()
    if args.data:
        with open(Path(args.data) / "gt.json") as f:
            gt_dict = json.load(f)
        with open(Path(args.data) / "results.json") as f:
            results = json.load(f)
        args.videos = len(gt_dict["videos"])
    else:
        gt_dict, results = make_dataset(args.videos, args.seed, args.distinct_masks)
    if args.gt_uncompressed:  # counts as the list of runs (pycocotools' uncompressed RLE)
        from tubelet.data.rle_counts import decode_counts
        for a in gt_dict["annotations"]:
            a["segmentations"] = [None if s is None else
                                  {"size": s["size"], "counts": decode_counts(s["counts"]).tolist()}
                                  for s in a["segmentations"]]
    t_gen = time.perf_counter() - t0
    gt = load_ytvis(gt_dict)
    want = evaluate(gt, load_results(results, gt))  # in process, no JSON files
    del gt

    folder = Path(args.data or args.keep or tempfile.mkdtemp(prefix="eval_cli_speed."))
    folder.mkdir(parents=True, exist_ok=True)
    gt_path, res_path = folder / "gt.json", folder / "results.json"
    try:
        if not args.data:
            with open(gt_path, "w") as f:
                json.dump(gt_dict, f)
            with open(res_path, "w") as f:
                json.dump(results, f)
        del gt_dict, results
        report: dict = {  # (with --data, how the files were made is not known: null)
            "videos": args.videos,
            "distinct_masks": None if args.data else args.distinct_masks,
            "gt_uncompressed": None if args.data else args.gt_uncompressed,
            "gt_mb": round(gt_path.stat().st_size / 2 ** 20, 1),
            "results_mb": round(res_path.stat().st_size / 2 ** 20, 1),
            "generate_s": round(t_gen, 2), "repeat": args.repeat,
        }
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        cmd = [sys.executable, "-m", "tubelet", "eval", str(gt_path), str(res_path), "--json"]
        wall, cpu, out = time_command(cmd, args.repeat, env)
        got = json.loads(out)
        report.update(tubelet_s=round(wall, 3), tubelet_cpu_s=round(cpu, 3),
                      AP=got["AP"], AP50=got["AP50"], AR10=got["AR10"])
        bad = differences(got, want)
        report["same_as_in_process"] = not bad
        failed = bool(bad)
        # start-up alone (interpreter, imports, argument parsing), and what the command imports
        report["startup_s"] = round(time_command(
            [sys.executable, "-m", "tubelet", "eval", "--help"], args.repeat, env)[0], 3)
        imp = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], env=env,
                             capture_output=True, text=True).stderr
        mods = {line.split("|")[-1].strip() for line in imp.splitlines() if "|" in line}
        report["heavy_imports"] = sorted(m for m in mods if m.split(".")[0] in HEAVY
                                         or m == "numpy.ma")

        if args.compare_src:
            env_old = dict(os.environ, PYTHONPATH=str(Path(args.compare_src).resolve()))
            w, c, o = time_command(cmd, args.repeat, env_old)
            bad = differences(json.loads(o), got)
            report.update(compare_s=round(w, 3), compare_cpu_s=round(c, 3),
                          compare_speedup=round(w / wall, 2),
                          compare_cpu_speedup=round(c / cpu, 2), same_as_compare=not bad)
            failed |= bool(bad)

        report["official"] = None
        src = str(Path(args.official_src).resolve()) if args.official_src else None
        available = not args.no_official and official_available(src)  # one import probe
        if src and not args.no_official and not available:
            raise SystemExit(f"--official-src {src}: ytvis.py / ytviseval.py do not import")
        if available:
            ocmd = [sys.executable, "-c", _OFFICIAL, str(gt_path), str(res_path)]
            ocmd += [src] if src else []
            w, c, o = time_command(ocmd, args.repeat)
            off = dict(zip(SUMMARY, json.loads(o)))
            bad = differences(dict(off, per_category={}), dict(got, per_category={}), 1e-12)
            report["official"] = {"official_s": round(w, 3), "official_cpu_s": round(c, 3),
                                  "speedup": round(w / wall, 2),
                                  "cpu_speedup": round(c / cpu, 2), "same_numbers": not bad}
            failed |= bool(bad)
        print(json.dumps(report))
    finally:
        if not (args.keep or args.data):
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
