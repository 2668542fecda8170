"""Typed dataclass configs: build from dicts (YAML), apply ``key=value`` overrides, dump.

Nested dataclasses are addressed with dots (``train.lr=1e-3``). Values are parsed with
``yaml.safe_load`` and then checked against the field's annotation, so ``lr=abc`` or an unknown
key is a clear :class:`~tubelet.errors.InputError`, never a silent string.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Sequence

import yaml

from tubelet.errors import InputError


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to annotation ``tp``; raise ValueError with a reason."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ValueError(f"expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, where) for v in value]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"expected a string, got {value!r}")
        return str(value)
    return value


def _default_of(f: dataclasses.Field) -> Any:
    """A field's default value (``default_factory()`` called), or None when it has none."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def from_dict(cls, data: dict, where: str = "config", base: Any = None):
    """Build dataclass ``cls`` from a (possibly partial) dict; unknown keys are errors.

    Missing keys keep their defaults — for a nested dataclass field, the *field's* default (e.g.
    a method's CPU preset from its ``default_factory``), not the nested class's own defaults: a
    YAML ``model: {num_classes: 1}`` changes one key of the preset and keeps the rest. ``base``:
    start from this instance instead of the class defaults.
    """
    if data is None:
        data = {}
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"unknown key(s) {unknown}; known: {sorted(fields)}", where)
    kwargs = {}
    for k, v in data.items():
        default = getattr(base, k) if base is not None else None
        if base is None and dataclasses.is_dataclass(hints[k]):
            default = _default_of(fields[k])
        try:
            if dataclasses.is_dataclass(default) and isinstance(v, dict):
                kwargs[k] = from_dict(type(default), v, f"{where}.{k}", base=default)
            else:
                kwargs[k] = _coerce(v, hints[k], f"{where}.{k}")
        except (ValueError, TypeError) as exc:
            raise InputError(f"bad value: {exc}", where, None, k) from None
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def to_dict(cfg) -> dict:
    """Dataclass -> plain dict (tuples as lists), ready for YAML/JSON."""
    def conv(x):
        if dataclasses.is_dataclass(x):
            return {f.name: conv(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x
    return conv(cfg)


def apply_overrides(cfg, overrides: Sequence[str], where: str = "override"):
    """Return a copy of ``cfg`` with ``a.b=value`` overrides applied (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise InputError(f"expected key=value, got {item!r}", where)
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        cfg = _set(cfg, key.strip().split("."), value, item, where)
    return cfg


def _set(obj, path: list[str], value: Any, item: str, where: str):
    if not dataclasses.is_dataclass(obj):
        raise InputError(f"cannot set {item!r}: not a config section", where)
    names = {f.name for f in dataclasses.fields(obj)}
    key = path[0]
    if key not in names:
        raise InputError(f"unknown key {key!r} in {item!r}; known: {sorted(names)}", where)
    if len(path) > 1:
        return dataclasses.replace(obj, **{key: _set(getattr(obj, key), path[1:], value, item, where)})
    tp = _hints(type(obj))[key]
    try:
        new = _coerce(value, tp, key)
    except (ValueError, TypeError) as exc:
        raise InputError(f"bad value in {item!r}: {exc}", where, None, key) from None
    return dataclasses.replace(obj, **{key: new})
