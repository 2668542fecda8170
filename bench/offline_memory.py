"""Peak memory of an offline method through `tubelet predict`: 200 vs 2,000 frames.

    python bench/offline_memory.py [--short 200] [--long 2000] [--size 240x320]

The method is the test double ``toy-offline`` (tests/toy_methods.py): it reads the whole video
backwards by index (``video[t]``, t = T-1 .. 0) — the worst case for an H.264 file, where each
backward step needs a seek to a keyframe — and keeps its result as per-frame RLE, as every
offline method must. Each run is `tubelet predict --weights toy.pt --source clip.mp4` in its own
child process, so the peak resident set size is that run's alone. The bound: the 2,000-frame
peak at most 1.1x the 200-frame one (decoded frames live only in the source's bounded cache,
``tubelet.video.DEFAULT_CACHE_SIZE`` frames). Prints one JSON object; results in bench/results/offline_memory.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
import tests.toy_methods  # registers toy-offline
from tubelet.cli.main import main
rc = main(sys.argv[1:])
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(rc)
"""


def write_video(path: Path, n: int, h: int, w: int) -> None:
    import numpy as np
    from tubelet.video import VideoWriter
    with VideoWriter(str(path), 24.0, w, h) as wr:
        for t in range(n):
            f = np.full((h, w, 3), 30, np.uint8)
            x = (3 * t) % (w - 40)
            f[h // 3: h // 3 + 40, x: x + 40] = 220
            wr.write(f)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", type=int, default=200)
    ap.add_argument("--long", type=int, default=2000)
    ap.add_argument("--size", default="240x320")
    args = ap.parse_args()
    from tubelet.video import DEFAULT_CACHE_SIZE
    h, w = map(int, args.size.split("x"))
    out = {"method": "toy-offline (reads backwards by index)", "size": args.size,
           "cache_frames": DEFAULT_CACHE_SIZE, "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = {"method": "toy-offline", "model": {"threshold": 128}}
        import torch
        torch.save({"model": {"gain": torch.ones(1)},
                    "meta": {"method": "toy-offline", "config": json.dumps(cfg),
                             "categories": [[1, "bright"]]}}, tmp / "toy.pt")
        for n in (args.short, args.long):
            video = tmp / f"clip{n}.mp4"
            write_video(video, n, h, w)
            cmd = ["predict", "--weights", str(tmp / "toy.pt"), "--source", str(video),
                   "--out", str(tmp / f"pred{n}"), "--no-progress"]
            t0 = time.time()
            r = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)),
                                *cmd], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            peak = int(next(x for x in r.stdout.splitlines() if x.startswith("PEAK_KIB")).split()[1])
            recs = json.loads((tmp / f"pred{n}" / "results.json").read_text())
            out["results"].append({"frames": n, "peak_rss_mib": round(peak / 1024, 1),
                                   "seconds": round(time.time() - t0, 1),
                                   "frames_with_mask": sum(s is not None
                                                           for s in recs[0]["segmentations"])})
    a, b = out["results"]
    out["ratio_long_over_short"] = round(b["peak_rss_mib"] / a["peak_rss_mib"], 3)
    out["bound"] = 1.1
    out["ok"] = out["ratio_long_over_short"] <= 1.1
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
