"""Strip a training checkpoint to a small inference file: model weights (fp16) + meta.

    python -m tubelet.engine.export runs/condinst_track_bench/last.pt src/tubelet/weights/condinst_track_synth.pt

Half precision halves the file; :meth:`torch.nn.Module.load_state_dict` copies the values back
into the float32 parameters. Buffers that are not floating point (BatchNorm's counters) are kept.
"""
from __future__ import annotations

import argparse
import sys

import torch

from tubelet.engine.checkpoint import load_checkpoint, save_checkpoint


def export(src: str, dst: str, half: bool = True) -> dict:
    ck = load_checkpoint(src)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ck["model"].items()}
    meta = dict(ck.get("meta", {}))
    meta["step"] = int(ck.get("step", 0))
    save_checkpoint(dst, model=state, meta=meta)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tubelet.engine.export", description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--fp32", action="store_true", help="keep float32 weights")
    a = ap.parse_args(argv)
    meta = export(a.src, a.dst, half=not a.fp32)
    print(f"wrote {a.dst} ({meta.get('method')}, step {meta['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
