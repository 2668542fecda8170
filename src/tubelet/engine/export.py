"""Strip a training checkpoint to a small inference file: model weights (fp16) + meta.

    tubelet export runs/condinst_track_bench/last.pt src/tubelet/weights/condinst_track_synth.pt \
        [--config configs/condinst_track_bench.yaml] [--fp32] [key=value ...]

(``python -m tubelet.engine.export`` still works: it runs that command.)

``--config`` and ``key=value`` replace/override the config stored with the weights (for inference
settings such as tracker gates; the model must still fit the weights, checked here).

A run trained with ``train.ema=true`` exports its EMA weights, the ones its evaluation and
``tubelet predict`` on the checkpoint use. Half precision halves the file;
:meth:`torch.nn.Module.load_state_dict` copies the values back into the float32 parameters.
Buffers that are not floating point (BatchNorm's counters) are kept.
"""
from __future__ import annotations

import json
import sys
from typing import Sequence

from tubelet.engine.checkpoint import load_checkpoint, save_checkpoint
from tubelet.engine.config import experiment_to_dict
from tubelet.engine.loading import method_from_checkpoint
from tubelet.errors import InputError
from tubelet.utils.fileio import check_output_file


def export(src: str, dst: str, half: bool = True, config: str | None = None,
           overrides: Sequence[str] = ()) -> dict:
    check_output_file(dst)
    ck = load_checkpoint(src)
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise InputError("not a training checkpoint (no 'model' state dict)", src)
    # always built once: a malformed meta or weights of another architecture are refused here,
    # not when the exported file is first used (issue 13)
    # the EMA weights when the run kept them: the ones its evaluation and `predict` used
    ema = isinstance(ck.get("ema"), dict) and isinstance(ck["ema"].get("model"), dict)
    _, cfg = method_from_checkpoint(ck, src, config, list(overrides), ema=ema)
    weights = ck["ema"]["model"] if ema else ck["model"]
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in weights.items()}
    meta = dict(ck.get("meta", {}))
    if config or overrides:
        meta["config"] = json.dumps(experiment_to_dict(cfg))
        meta["method"] = cfg.method
    step = ck.get("step", meta.get("step", 0))  # an exported file keeps its step in meta
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InputError(f"expected a non-negative int, got {step!r}", src, field="step")
    meta["step"] = step
    save_checkpoint(dst, model=state, meta=meta)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tubelet.engine.export ARGS`` is ``tubelet export ARGS`` (same exit codes)."""
    from tubelet.cli.main import main as cli_main  # the CLI sits above the engine: import late
    return cli_main(["export", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
