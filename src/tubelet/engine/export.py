"""Strip a training checkpoint to a small inference file: model weights (fp16) + meta.

    python -m tubelet.engine.export runs/condinst_track_bench/last.pt src/tubelet/weights/condinst_track_synth.pt \
        [--config configs/condinst_track_bench.yaml] [key=value ...]

``--config`` and ``key=value`` replace/override the config stored with the weights (for inference
settings such as tracker gates; the model must still fit the weights, checked here).

Half precision halves the file; :meth:`torch.nn.Module.load_state_dict` copies the values back
into the float32 parameters. Buffers that are not floating point (BatchNorm's counters) are kept.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from tubelet.engine.checkpoint import load_checkpoint, save_checkpoint
from tubelet.engine.config import experiment_from_dict, experiment_to_dict, load_experiment
from tubelet.engine.registry import build_method
from tubelet.errors import InputError
from tubelet.utils.config import apply_overrides


def export(src: str, dst: str, half: bool = True, config: str | None = None,
           overrides: Sequence[str] = ()) -> dict:
    ck = load_checkpoint(src)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ck["model"].items()}
    meta = dict(ck.get("meta", {}))
    if config or overrides:
        if config:
            cfg = load_experiment(config, list(overrides))
        else:
            cfg = apply_overrides(experiment_from_dict(json.loads(meta["config"]), src),
                                  list(overrides), "command line")
        model = build_method(cfg.method, cfg.model)
        try:
            model.load_state_dict(ck["model"], strict=True)
        except RuntimeError as exc:
            raise InputError(f"the new config does not fit the weights: {str(exc)[:300]}",
                             config or src) from None
        meta["config"] = json.dumps(experiment_to_dict(cfg))
        meta["method"] = cfg.method
    meta["step"] = int(ck.get("step", 0))
    save_checkpoint(dst, model=state, meta=meta)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tubelet.engine.export", description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--fp32", action="store_true", help="keep float32 weights")
    ap.add_argument("--config", default=None, help="replace the stored config with this one")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the stored config")
    a = ap.parse_args(argv)
    try:
        meta = export(a.src, a.dst, half=not a.fp32, config=a.config, overrides=a.overrides)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {a.dst} ({meta.get('method')}, step {meta['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
