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


def load_model_weights(model: torch.nn.Module, path: str | Path) -> dict:
    """Load a checkpoint's (or a bare state dict's) model weights strictly; return its ``meta``."""
    ck = load_checkpoint(path)
    state = ck.get("model", ck) if isinstance(ck, dict) else ck
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"weights do not fit the model: {str(exc)[:500]}", str(path)) from None
    return ck.get("meta", {}) if isinstance(ck, dict) else {}
