"""A tiny method registry: a dict and a decorator that refuses duplicates.

    @register_method("condinst-track", CondInstTrackConfig)
    def build(cfg: CondInstTrackConfig) -> VISMethod: ...

    from tubelet.methods import build_method, list_methods
    model = build_method("condinst-track", cfg)

This module imports nothing from the methods: ``tubelet/methods/__init__.py`` imports it first and
then every method folder, whose imports register them. Import the functions from
``tubelet.methods`` (importing the package is what registers the methods).
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
    hidden: bool = False      # test doubles: buildable by name, not listed by list_methods()


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, config_cls: type, hidden: bool = False):
    """Decorator registering ``build(cfg) -> VISMethod`` under ``name``; duplicates raise."""
    def deco(fn):
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = MethodSpec(name, config_cls, fn, hidden)
        return fn
    return deco


def get_method(name: str) -> MethodSpec:
    if name not in _METHODS:
        raise InputError(f"unknown method {name!r}; available: {list_methods()}",
                         field="method")
    return _METHODS[name]


def build_method(name: str, cfg: Any = None):
    """Build method ``name`` from its dataclass config (default: the config class's defaults)."""
    spec = get_method(name)
    if cfg is not None and not isinstance(cfg, spec.config_cls):
        raise TypeError(f"method {name!r} needs a {spec.config_cls.__name__}, "
                        f"got {type(cfg).__name__}")
    return spec.build(cfg if cfg is not None else spec.config_cls())


def list_methods() -> list[str]:
    """Names of the registered (non-hidden) methods, sorted."""
    return sorted(n for n, s in _METHODS.items() if not s.hidden)
