"""Atomic writes and checked reads.

Outputs are written to a temporary file in the destination folder and renamed into place, so a
crash never leaves a half-written result behind.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from tubelet.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _reject_nan(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite number {obj!r} cannot be written as JSON")
    return obj


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    """Write ``obj`` as strict JSON (no NaN/Infinity) atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing, empty or malformed file raises :class:`InputError`.

    ``NaN``, ``Infinity`` and ``-Infinity`` literals parse as floats (Python's ``json.dumps``
    writes them, so careless producers do): every reader validates its numbers afterwards and
    names the record and field that holds one, which a parse error could not.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    if path.is_dir():
        raise InputError("expected a JSON file, found a folder", path=str(path))
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise InputError("file is empty", path=str(path))
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InputError(f"malformed JSON: {exc}", path=str(path)) from None


def read_yaml(path: str | os.PathLike) -> Any:
    """``yaml.safe_load`` a file with clear errors."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"malformed YAML: {exc}", path=str(path)) from None
