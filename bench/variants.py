"""Inference-time variants of one trained model on one dataset: AP / AR and identity switches.

    python bench/variants.py --weights runs/iai_condinst_bench/last.pt \\
        --source data/synth_bench/valid --out runs/iai_variants \\
        iai= greedy="model.tracker=greedy" local_only="model.model.use_global=false"

Each ``name=OVERRIDES`` (space-separated ``key=value`` config overrides, empty for the stored
config) runs ``tubelet predict --weights W --source S --out OUT/name --no-progress OVERRIDES`` in a
child process (a variant whose folder already holds ``done.json`` is reused, so an interrupted
run resumes), then every results file is scored like ``bench/track_eval.py`` (official AP / AR,
identity switches). Prints one JSON object (rows + the exact commands) and a markdown table on
stderr. All variants share the same weights: these are ablations of inference choices (tracker,
memory switches), not retrained models.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from track_eval import print_table, score

from tubelet.data.ytvis import load_results, load_ytvis


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--source", required=True, help="dataset folder (instances.json + JPEGImages)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("variants", nargs="+", help='name=OVERRIDES, e.g. greedy="model.tracker=greedy"')
    args = ap.parse_args()
    gt = load_ytvis(str(Path(args.source) / "instances.json"))
    rows = []
    for item in args.variants:
        name, _, overrides = item.partition("=")
        out = Path(args.out) / name
        cmd = [sys.executable, "-m", "tubelet", "predict", "--weights", args.weights,
               "--source", args.source, "--out", str(out), "--no-progress",
               "--threads", str(args.threads), *overrides.split()]
        if not (out / "done.json").exists():
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"variant {name} failed:\n{r.stderr[-2000:]}")
        done = json.loads((out / "done.json").read_text())
        rows.append({"name": name, "overrides": overrides, "command": " ".join(cmd[1:]),
                     "seconds": done.get("seconds"), "frames": done.get("frames"),
                     **score(gt, load_results(str(out / "results.json"), gt))})
    print(json.dumps({"weights": args.weights, "source": args.source, "rows": rows}, indent=1))
    print_table(rows, {"variant": "name"})


if __name__ == "__main__":
    main()
