"""Build a method from a checkpoint or an exported weights file (its stored config or a given one).

A weights file is a dict ``{"model": state_dict, "meta": {"method", "config" (JSON),
"categories"}, "ema"?: {"model": state_dict, ...}}``; when it holds EMA weights those are the ones
loaded for inference (``ema=False`` loads the raw weights).
"""
from __future__ import annotations

import json
from pathlib import Path

from tubelet.engine.checkpoint import load_checkpoint, load_state
from tubelet.engine.config import experiment_from_dict, load_experiment
from tubelet.errors import InputError
from tubelet.methods import build_method
from tubelet.utils.config import apply_overrides

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: the synthetic-shapes model (``--model synth``; ``load_method(None, None)``)
BUNDLED = WEIGHTS_DIR / "condinst_track_synth.pt"
#: the bundled models by name (``tubelet predict --model NAME``, ``tubelet.load_model(NAME)``)
MODELS = {
    "objects": WEIGHTS_DIR / "condinst_track_objects.pt",  # real footage, class-agnostic (DAVIS)
    "synth": BUNDLED,  # the 10 shape categories of the synthetic benchmark
}
#: what ``info.description`` of a dataset written by ``tubelet synth`` says
SYNTH_DESCRIPTION = "tubelet synthetic VIS benchmark"


def bundled_model(name: str) -> Path:
    """The file of bundled model ``name`` (an InputError lists the names)."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r} (bundled: {', '.join(MODELS)}; or pass "
                         f"--weights)", field="--model")
    path = MODELS[name]
    if not path.is_file():
        raise InputError("the bundled model is missing from this install; pass --weights",
                         str(path), field="--model")
    return path


def default_model(source: str | Path) -> str:
    """The bundled model for ``source`` when none is named: ``synth`` for a dataset folder that
    ``tubelet synth`` wrote (its ``instances.json`` says so in ``info.description``),
    ``objects`` for everything else: a video file, a folder of frames, any other dataset."""
    src = Path(source)
    gt = src / "instances.json"
    if not (src.is_dir() and gt.is_file() and (src / "JPEGImages").is_dir()):
        return "objects"
    from tubelet.utils.fileio import read_json
    try:
        info = read_json(gt).get("info")
    except (InputError, AttributeError):
        return "objects"  # the dataset loader reports what is wrong with the file
    desc = info.get("description") if isinstance(info, dict) else None
    return "synth" if desc == SYNTH_DESCRIPTION else "objects"


def bundled_weights(method: str) -> Path:
    """The bundled synthetic-benchmark weights of a registered method (``tubelet predict
    --method NAME``): ``weights/<name with _>_synth.pt``; an InputError lists the bundled ones."""
    path = WEIGHTS_DIR / f"{method.replace('-', '_')}_synth.pt"
    if not path.is_file():
        have = sorted(p.name[:-len("_synth.pt")].replace("_", "-")
                      for p in WEIGHTS_DIR.glob("*_synth.pt"))
        raise InputError(f"no bundled weights for method {method!r} (bundled: {', '.join(have)}; "
                         f"or pass --weights)", field="--method")
    return path


def load_method(config: str | None, weights: str | None, overrides=(), fuse: bool = True,
                ema: bool = True, missing_ok: tuple[str, ...] = ()):
    """Build the method from ``config`` (or the config saved with ``weights``) and load weights;
    ``fuse`` folds BatchNorm into convolutions for inference (``VISMethod.fuse_for_inference``).
    ``missing_ok``: parameter-name prefixes the weights may lack (:func:`load_state`).
    Returns ``(model, cfg)`` with the model in eval mode."""
    wpath = Path(weights) if weights else BUNDLED
    if not wpath.exists():
        raise InputError("weights not found" + ("" if weights else " (the bundled model is "
                         "missing from this install; pass --weights)"), str(wpath))
    model, cfg = method_from_checkpoint(load_checkpoint(wpath), str(wpath), config, overrides,
                                        ema=ema, missing_ok=missing_ok)
    model.eval()
    if fuse:
        model.fuse_for_inference()
    return model, cfg


# Config keys renamed by the one-naming-convention change (thresholds end in ``_thr``), per section
# of a stored condinst-track config: checkpoints written before it still load.
_RENAMED = {("model", "model"): {"score_thresh": "score_thr", "nms_thresh": "nms_thr",
                                 "mask_thresh": "mask_thr"},
            ("model", "greedy"): {"gate": "gate_thr", "min_mean_score": "mean_score_thr"},
            ("model", "memory"): {"backdrop_iou": "backdrop_iou_thr", "min_score": "score_thr",
                                  "box_nms_iou": "box_nms_thr", "mask_nms_iou": "mask_nms_thr"}}


def migrate_stored_config(cfg: dict) -> dict:
    """Rename the pre-``_thr`` keys of a stored config dict (in place; returns it)."""
    if not isinstance(cfg, dict) or cfg.get("method") != "condinst-track":
        return cfg
    for path, renames in _RENAMED.items():
        sec = cfg
        for key in path:
            sec = sec.get(key) if isinstance(sec, dict) else None
        if isinstance(sec, dict):
            for old, new in renames.items():
                if old in sec and new not in sec:
                    sec[new] = sec.pop(old)
    return cfg


def method_from_checkpoint(ck: dict, where: str, config: str | None = None, overrides=(),
                           ema: bool = True, missing_ok: tuple[str, ...] = ()):
    """The method of a loaded checkpoint, its weights loaded strictly -> ``(model, cfg)``.

    The config is ``config`` (a YAML path or preset) or the one stored with the weights, with
    ``overrides`` applied; a config whose model does not fit the weights is an InputError
    (parameters under a ``missing_ok`` prefix may be absent: :func:`load_state`).
    """
    if not isinstance(ck, dict):
        raise InputError("not a tubelet weights file (expected a dict)", where)
    meta = ck.get("meta", {})
    if not isinstance(meta, dict):
        raise InputError("malformed meta (expected a dict)", where, field="meta")
    if config:
        cfg = load_experiment(config, overrides)
    elif "config" in meta:
        try:
            stored = json.loads(meta["config"])
        except (TypeError, ValueError, RecursionError) as exc:
            raise InputError(f"stored config is not JSON: {exc}", where, field="meta.config") \
                from None
        cfg = experiment_from_dict(migrate_stored_config(stored), f"{where} (stored config)")
        cfg = apply_overrides(cfg, list(overrides), "command line") if overrides else cfg
    else:
        raise InputError("the weights file holds no config; pass --config", where)
    model = build_method(cfg.method, cfg.model)
    state = ck["ema"]["model"] if ema and isinstance(ck.get("ema"), dict) else ck.get("model", ck)
    load_state(model, state, f"{where} ({cfg.method})", missing_ok)
    cats = meta.get("categories")
    if cats:
        try:
            model.set_categories([(int(c), str(n)) for c, n in cats])
        except (TypeError, ValueError) as exc:
            raise InputError(f"malformed categories: {exc}", where, field="meta.categories") \
                from None
    return model, cfg
