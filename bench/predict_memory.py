"""Peak memory of `tubelet predict` on a 200-frame and a 2,000-frame synthetic video (`long` preset).

    python bench/predict_memory.py [--short 200] [--long 2000] [--weights W]
                                   [--synth height=96 --synth width=160] [key=value ...]

Each prediction runs in its own child process; the peak resident set size (ru_maxrss of that
child) is read after it exits. The ratio long/short must be at most 1.1. ``--synth`` settings go
to the generator (e.g. a smaller frame for a slow offline method), ``key=value`` overrides to
``tubelet predict``. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = ("import resource, subprocess, sys; "
         "r = subprocess.run(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", type=int, default=200)
    ap.add_argument("--long", type=int, default=2000)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--synth", action="append", default=[], metavar="KEY=VALUE",
                    help="generator setting of the long preset (repeatable), e.g. height=96")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides for predict")
    args = ap.parse_args()
    out = {"weights": args.weights, "synth": args.synth, "overrides": args.overrides,
           "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.short, args.long):
            data = Path(tmp) / f"long{n}"
            subprocess.run([sys.executable, "-m", "tubelet", "synth", str(data), "--preset", "long",
                            "--seed", "0", f"length={n}", *args.synth], check=True, capture_output=True)
            frames = next((data / "valid" / "JPEGImages").iterdir())
            cmd = [sys.executable, "-m", "tubelet", "predict", "--source", str(frames),
                   "--out", str(Path(tmp) / f"pred{n}"), "--no-progress"]
            if args.weights:
                cmd += ["--weights", args.weights]
            cmd += args.overrides
            t0 = time.time()
            r = subprocess.run([sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            peak_kib = int(r.stdout.strip().splitlines()[-1])
            out["results"].append({"frames": n, "peak_rss_mib": peak_kib / 1024,
                                   "seconds": time.time() - t0})
    a, b = out["results"]
    out["ratio_long_over_short"] = b["peak_rss_mib"] / a["peak_rss_mib"]
    out["bound"] = 1.1
    out["ok"] = out["ratio_long_over_short"] <= 1.1
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
