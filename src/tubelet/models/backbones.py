"""Multi-scale CNN backbones: torchvision ResNet-18/50 and MobileNetV2.

A backbone maps images ``[B, 3, H, W]`` to a dict of feature maps ``{"c2"?, "c3", "c4", "c5"}`` at
strides 4, 8, 16, 32 (``"c2"`` only when ``return_c2=True``); ``out_channels`` and ``strides`` give
each level's width and stride. Spatial sizes are ``ceil(H / stride)`` (every stride-2 conv pads).

Stages for ``freeze_at`` (detectron2's convention): 1 = stem, 2 = C2 stage, 3 = C3, 4 = C4, 5 = C5;
``freeze_at=k`` freezes stages 1..k (``requires_grad=False``, their BatchNorms frozen too).
``norm="frozen_bn"`` freezes every BatchNorm (the usual choice for small detection batches);
``norm="bn"`` keeps trainable BatchNorm outside the frozen stages.
"""
from __future__ import annotations

import os

import torch
import torchvision
from torch import Tensor, nn
from torchvision.ops.misc import FrozenBatchNorm2d

from tubelet.errors import InputError
from tubelet.models.weights import is_random_init, load_into, resolve_weights

BACKBONES = ("mobilenet_v2", "resnet18", "resnet50")
# Inputs are RGB in [0, 1] normalised with torchvision's ImageNet statistics: (x - mean) / std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` under ``module`` by a ``FrozenBatchNorm2d`` with its statistics.

    Returns the (possibly new) module; children are replaced in place.
    """
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        with torch.no_grad():
            if module.affine:
                frozen.weight.copy_(module.weight)
                frozen.bias.copy_(module.bias)
            if module.running_mean is not None:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = freeze_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
    freeze_batchnorm(module)


class Backbone(nn.Module):
    """Torchvision classifier trunk split into stages, returning C2-C5.

    Args:
        name: ``"mobilenet_v2"`` (CPU default), ``"resnet18"`` or ``"resnet50"``.
        pretrained: ``None``/``"none"`` (random init), ``"imagenet"`` or a ``.pth`` path
            (see :mod:`tubelet.models.weights`).
        norm: ``"frozen_bn"`` or ``"bn"``.
        freeze_at: freeze stages 1..freeze_at (0 = train everything).
        return_c2: also return the stride-4 ``"c2"`` map.
        finders, allow_download: passed to :func:`~tubelet.models.weights.resolve_weights`.

    MobileNetV2's C5 is the 320-channel output of the last inverted residual block; the final
    1x1 conv to 1280 channels (a classifier feature) is dropped: it costs ~0.1 GMAC at 360x640 and
    the FPN projects to 256 or fewer channels anyway.
    """

    def __init__(self, name: str = "mobilenet_v2", pretrained: str | os.PathLike | None = None,
                 norm: str = "frozen_bn", freeze_at: int = 0, return_c2: bool = False,
                 finders=None, allow_download: bool | None = None):
        super().__init__()
        if name not in BACKBONES:
            raise InputError(f"unknown backbone '{name}' (known: {', '.join(BACKBONES)})",
                             field="backbone")
        if norm not in ("frozen_bn", "bn"):
            raise InputError(f"unknown backbone norm '{norm}' (frozen_bn or bn)", field="norm")
        if not 0 <= freeze_at <= 5:
            raise InputError(f"freeze_at must be in 0..5, got {freeze_at}", field="freeze_at")
        self.name, self.return_c2, self.freeze_at = name, return_c2, freeze_at
        net = getattr(torchvision.models, name)(weights=None)
        state = resolve_weights(name, pretrained, finders=finders, allow_download=allow_download)
        if state is not None:
            load_into(net, state, str(pretrained))
        self.pretrained = not is_random_init(pretrained)
        if name == "mobilenet_v2":
            f = net.features
            stages = [f[0:2], f[2:4], f[4:7], f[7:14], f[14:18]]  # strides 2, 4, 8, 16, 32
            channels = [16, 24, 32, 96, 320]
        else:
            stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            stages = [stem, net.layer1, net.layer2, net.layer3, net.layer4]  # strides 4,4,8,16,32
            w = 4 if name == "resnet50" else 1  # bottleneck expansion
            channels = [64, 64 * w, 128 * w, 256 * w, 512 * w]
        self.stages = nn.ModuleList(stages)
        del net  # the classifier head is not kept
        for stage in self.stages[:freeze_at]:
            _freeze(stage)
        if norm == "frozen_bn":
            freeze_batchnorm(self)
        names = ["c2", "c3", "c4", "c5"] if return_c2 else ["c3", "c4", "c5"]
        all_channels = dict(zip(["c2", "c3", "c4", "c5"], channels[1:]))
        all_strides = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}
        self.out_features: list[str] = names
        self.out_channels: dict[str, int] = {n: all_channels[n] for n in names}
        self.strides: dict[str, int] = {n: all_strides[n] for n in names}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """images ``[B, 3, H, W]`` (ImageNet-normalised) -> ``{"c2"?, "c3", "c4", "c5"}``, each
        ``[B, out_channels[k], ceil(H/s), ceil(W/s)]``."""
        out = {}
        x = images
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                key = f"c{i + 1}"
                if key in self.out_channels:
                    out[key] = x
        return out


def build_backbone(name: str = "mobilenet_v2", **kwargs) -> Backbone:
    """``Backbone(name, **kwargs)``; kept as the one entry point methods call."""
    return Backbone(name, **kwargs)
