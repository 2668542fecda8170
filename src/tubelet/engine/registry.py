"""A tiny method registry: a dict and a decorator that refuses duplicates.

    @register_method("condinst-track", CondInstTrackConfig)
    def build(cfg: CondInstTrackConfig) -> VISMethod: ...

    model = build_method("condinst-track", cfg)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tubelet.errors import InputError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type          # the method's dataclass config
    build: Callable[[Any], Any]


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, config_cls: type):
    def deco(fn):
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = MethodSpec(name, config_cls, fn)
        return fn
    return deco


def _load_all() -> None:
    import tubelet.methods  # noqa: F401  (imports register every method)


def get_method(name: str) -> MethodSpec:
    _load_all()
    if name not in _METHODS:
        raise InputError(f"unknown method {name!r}; available: {sorted(_METHODS)}")
    return _METHODS[name]


def build_method(name: str, cfg: Any = None):
    spec = get_method(name)
    return spec.build(cfg if cfg is not None else spec.config_cls())


def list_methods() -> list[str]:
    _load_all()
    return sorted(_METHODS)
