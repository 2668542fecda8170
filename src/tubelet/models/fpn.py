"""Feature pyramid network (Lin et al. 2017) with FCOS's P6/P7 (Tian et al. 2019).

Inputs ``{"c2"?, "c3", "c4", "c5"}`` from a :class:`~tubelet.models.backbones.Backbone`; outputs
``{"p2"?, "p3", ..., "p7"}``, every level ``[B, channels, ceil(H/s), ceil(W/s)]`` with s = 2**level.
P6 is a stride-2 3x3 conv on P5 and P7 one on ReLU(P6), as in FCOS (the P5 output, not C5).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    """Top-down pyramid with lateral 1x1 and output 3x3 convs.

    Args:
        in_channels: channels per input level, e.g. ``{"c3": 32, "c4": 96, "c5": 320}``; a ``"c2"``
            entry adds a ``"p2"`` output (stride 4, for mask features).
        channels: width of every output level (256 in the papers; 64-128 for CPU configs).
        top_levels: extra stride-2 levels on top of P5 (2 = P6, P7 as in FCOS; 0 = none).
    """

    def __init__(self, in_channels: dict[str, int], channels: int = 256, top_levels: int = 2):
        super().__init__()
        self.in_features = sorted(in_channels, key=lambda k: int(k[1:]))  # fine -> coarse
        self.lateral = nn.ModuleDict({k: nn.Conv2d(in_channels[k], channels, 1)
                                      for k in self.in_features})
        self.output = nn.ModuleDict({k: nn.Conv2d(channels, channels, 3, padding=1)
                                     for k in self.in_features})
        self.top = nn.ModuleList([nn.Conv2d(channels, channels, 3, stride=2, padding=1)
                                  for _ in range(top_levels)])
        last = int(self.in_features[-1][1:])
        self.out_features = [f"p{k[1:]}" for k in self.in_features] + \
            [f"p{last + i + 1}" for i in range(top_levels)]
        self.strides = {k: 2 ** int(k[1:]) for k in self.out_features}
        self.channels = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)  # the usual FPN init (unit gain, linear)
                nn.init.zeros_(m.bias)

    def forward(self, feats: dict[str, Tensor]) -> dict[str, Tensor]:
        """feats ``{"c3": [B, C3, H/8, W/8], ...}`` -> ``{"p3": [B, channels, H/8, W/8], ...}``."""
        out: dict[str, Tensor] = {}
        prev = None
        for k in reversed(self.in_features):  # coarse -> fine
            lat = self.lateral[k](feats[k])
            if prev is not None:
                # size= rather than scale_factor=2: with odd sizes ceil(H/8) != 2 * ceil(H/16)
                lat = lat + F.interpolate(prev, size=lat.shape[-2:], mode="nearest")
            prev = lat
            out[f"p{k[1:]}"] = self.output[k](lat)
        x = out[f"p{self.in_features[-1][1:]}"]
        last = int(self.in_features[-1][1:])
        for i, conv in enumerate(self.top):
            x = conv(x if i == 0 else F.relu(x))
            out[f"p{last + i + 1}"] = x
        return {k: out[k] for k in self.out_features}
