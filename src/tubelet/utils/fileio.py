"""Atomic writes and checked reads.

Outputs are written to a temporary file in the destination folder and renamed into place, so a
crash never leaves a half-written result behind.
"""
from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from tubelet.errors import InputError

# Files of at least this many bytes are parsed by msgspec: 0.33 s against json's 0.66 s (gc
# paused for both) on the 125 MB results file of bench/eval_cli_speed.py, but importing it
# (typing_extensions, uuid, decimal, ...) costs about as much as it saves on a file of a few MB.
# None once the import failed (json does everything, with the same values). Times measured on a
# busy 2-core machine: ratios, not absolute figures.
FAST_JSON_MIN_BYTES = 4 << 20
_fast_json: Any = ...  # the msgspec decoder, imported on first use


def _fast_json_decoder() -> Any:
    global _fast_json
    if _fast_json is ...:
        try:
            from msgspec.json import Decoder
            _fast_json = Decoder().decode
        except ImportError:  # pragma: no cover - msgspec is a dependency
            _fast_json = None
    return _fast_json


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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (restored on leaving).

    Parsing or validating a VIS file makes millions of containers (a dict, a list and a string
    per mask), all kept and none in a cycle; the collector would re-traverse the growing heap
    many times: 40 % of ``json.loads`` of the 125 MB results file of
    ``bench/eval_cli_speed.py``, 1.2 of the 2.9 s of ``load_results`` on
    ``bench/eval_speed.py --distinct-masks``.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing, empty or malformed file raises :class:`InputError`.

    ``NaN``, ``Infinity`` and ``-Infinity`` literals parse as floats (Python's ``json.dumps``
    writes them, so careless producers do): every reader validates its numbers afterwards and
    names the record and field that holds one, which a parse error could not.

    Parsed with the garbage collector paused; a file of :data:`FAST_JSON_MIN_BYTES` or more by
    msgspec: it accepts a subset of what ``json.loads`` accepts and then returns the same values
    (arbitrary-size ints where orjson, for one, gives floats; correctly rounded floats; the last
    of duplicate keys). Whatever it refuses (NaN / Infinity literals, numbers beyond the float
    range, lone surrogates, invalid UTF-8, deep nesting, every malformed file) goes to
    ``json.loads`` on the text, so values and messages are json's.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    if path.is_dir():
        raise InputError("expected a JSON file, found a folder", path=str(path))
    with gc_paused():
        if path.stat().st_size >= FAST_JSON_MIN_BYTES and _fast_json_decoder() is not None:
            try:
                return _fast_json(path.read_bytes())
            except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
                pass
        return _parse_json_text(path)


def _parse_json_text(path: Path) -> Any:
    """``json.loads`` of the file's text, with :func:`read_json`'s errors."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise InputError("file is empty", path=str(path))
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InputError(f"malformed JSON: {exc}", path=str(path)) from None
    except RecursionError:  # e.g. 100k nested brackets: no VIS file is nested that deep
        raise InputError("malformed JSON: nested too deeply", path=str(path)) from None


def read_yaml(path: str | os.PathLike) -> Any:
    """``yaml.safe_load`` a file with clear errors."""
    import yaml  # here: at module level it added 20-50 ms to every command (``tubelet eval``)
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"malformed YAML: {exc}", path=str(path)) from None


def _nearest_existing(path: Path) -> Path:
    anc = path
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    return anc


def _check_parent(path: Path, field: str | None) -> None:
    """The folders leading to ``path``: the nearest existing one must be a writable folder."""
    anc = _nearest_existing(path.parent if path.parent != path else path)
    if not anc.is_dir():
        raise InputError(f"the output path goes through a file ({anc})", str(path), field=field)
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"cannot write here: folder {anc} is not writable", str(path),
                         field=field)


def check_output_file(path: str | os.PathLike, field: str | None = None) -> Path:
    """Refuse an output file path that cannot be written, *before* any work starts (issue 13):
    an existing folder, a path through a file, an unwritable folder. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise InputError("the output file is an existing folder", str(path), field=field)
    _check_parent(path, field)
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError("cannot overwrite: the file is not writable", str(path), field=field)
    return path


def check_output_dir(path: str | os.PathLike, field: str | None = None) -> Path:
    """Refuse an output folder that cannot be written, before any work starts: an existing
    file, a path through a file, an unwritable folder. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError("the output folder is a file", str(path), field=field)
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError("cannot write here: the folder is not writable", str(path),
                             field=field)
        return path
    _check_parent(path, field)
    return path


# the names atomic_path (mkstemp) and render_video (mkdtemp) give their temporaries:
# ".<target name>.<8 random chars>.tmp[.<suffix>]"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of this package's hidden temporaries (file or folder)."""
    return bool(_TEMP_NAME.match(name))


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the hidden temporaries a killed run left directly in ``folder`` (issue 13: a kill
    during rendering left ``.<name>.mp4.*.tmp.mp4`` and ``png/.*.tmp/`` forever). Call it when a
    command starts writing into a folder it owns; a second process writing the *same* outputs at
    the same time would lose its temporaries (and fail its rename), which is no valid use anyway.
    Returns the paths removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    gone = []
    for p in folder.iterdir():
        if is_temp_name(p.name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def inside(root: str | os.PathLike, *parts: str) -> Path:
    """``root / parts`` refusing a result outside ``root`` (``..``, absolute parts, symlinked
    escapes): no output or input path derived from a video or file name may leave its folder."""
    root = Path(root)
    path = root.joinpath(*parts)
    base = root.resolve()
    if not path.resolve().is_relative_to(base):
        raise InputError(f"{'/'.join(parts)!r} leaves the folder {root}", str(path))
    return path
