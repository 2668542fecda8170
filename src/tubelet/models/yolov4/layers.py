"""Small building blocks shared by the YOLOv4+1seg backbone, neck and heads.

Every convolution of Darknet is conv (no bias) -> BatchNorm -> activation; :func:`conv_bn_act`
returns it as an ``nn.Sequential`` so :func:`tubelet.models.fuse.fuse_conv_bn` can fold the
BatchNorm into the convolution for CPU inference.
"""
from __future__ import annotations

from torch import nn

ACTIVATIONS = ("mish", "leaky", "relu", "silu")


def make_act(name: str) -> nn.Module:
    """Activation by name: ``mish`` (the CSPDarknet53 backbone of YOLOv4), ``leaky`` (slope 0.1, the
    YOLOv4 neck and head), ``relu`` or ``silu``."""
    if name == "mish":
        return nn.Mish(inplace=True)
    if name == "leaky":
        return nn.LeakyReLU(0.1, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "silu":
        return nn.SiLU(inplace=True)
    raise ValueError(f"unknown activation '{name}' (known: {', '.join(ACTIVATIONS)})")


def conv_bn_act(c_in: int, c_out: int, k: int = 1, stride: int = 1, act: str = "mish") -> nn.Sequential:
    """``k x k`` conv (padding ``k // 2``, no bias) -> BatchNorm -> activation.

    Maps ``[B, c_in, H, W]`` to ``[B, c_out, ceil(H / stride), ceil(W / stride)]``.
    """
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out), make_act(act))


def scale_width(channels: int, width: float, divisor: int = 8) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(round(channels * width / divisor)) * divisor)


def scale_depth(blocks: int, depth: float) -> int:
    """``blocks * depth`` rounded, at least 1."""
    return max(1, int(round(blocks * depth)))
