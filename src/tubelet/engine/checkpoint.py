"""Checkpoints: model, optimizer, scheduler, scaler, step and every RNG state.

Saved atomically (temp file + rename) and loaded with ``torch.load(..., weights_only=True)``: a
checkpoint holds tensors and plain Python values only, so loading one never runs code.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tubelet.errors import InputError
from tubelet.utils.fileio import atomic_path


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             # numpy's state tuple holds an ndarray; store it as a tensor for weights_only loading
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                       int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuplify(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(path: str | Path, **parts: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(parts, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError("checkpoint not found", str(path))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, truncated zip...
        raise InputError(f"cannot load checkpoint: {exc}", str(path)) from None


def load_state(model: torch.nn.Module, state: dict, where: str,
               missing_ok: tuple[str, ...] = ()) -> None:
    """``model.load_state_dict(state)`` strictly, except that parameters whose name starts with
    one of ``missing_ok`` may be absent from ``state`` (new modules keep their fresh init: a
    model grown by an option, fine-tuned from weights trained without it). Any other mismatch
    is an InputError naming ``where``."""
    if not isinstance(state, dict):
        raise InputError("malformed weights (expected a dict of tensors)", where, field="model")
    try:  # strict=False reports missing / unexpected keys; shape mismatches still raise
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise InputError(f"weights do not fit the model: {str(exc)[:500]}", where) from None
    bad = [k for k in missing if not k.startswith(tuple(missing_ok))]
    if bad or unexpected:
        raise InputError(f"weights do not fit the model: missing {bad[:5]}, unexpected "
                         f"{list(unexpected)[:5]}", where)


def load_model_weights(model: torch.nn.Module, path: str | Path,
                       missing_ok: tuple[str, ...] = ()) -> dict:
    """Load a checkpoint's (or a bare state dict's) model weights strictly (but see
    :func:`load_state`'s ``missing_ok``); return its ``meta``."""
    ck = load_checkpoint(path)
    state = ck.get("model", ck) if isinstance(ck, dict) else ck
    load_state(model, state, str(path), missing_ok)
    return ck.get("meta", {}) if isinstance(ck, dict) else {}
