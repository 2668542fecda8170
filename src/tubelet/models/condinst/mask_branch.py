"""CondInst's mask branch (Tian et al. 2020, Sec. 3.2): the shared mask features F_mask.

Each input pyramid level is refined by a 3x3 conv + norm + ReLU, upsampled (bilinear) to the
finest input level and summed; a tower of ``num_convs`` 3x3 convs follows and a 1x1 conv projects
to ``out_channels`` (C_mask = 8). Defaults: inputs P3-P5, 128 channels, 4 convs, output stride 8.
With ``in_features=("p2", ...)`` the output is at stride 4.

GroupNorm instead of BatchNorm: CPU training runs with batches of 1-4 images.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tubelet.models.condinst.fcos import group_norm


def _conv_gn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), group_norm(cout), nn.ReLU())


class MaskBranch(nn.Module):
    """FPN levels -> ``[B, out_channels, H/s, W/s]`` with s the stride of ``in_features[0]``.

    Args:
        in_channels: FPN width.
        in_features: pyramid levels used, finest first, e.g. ``("p3", "p4", "p5")``.
        channels: width of the branch (128 in the paper).
        num_convs: convs after the fusion (4 in the paper).
        out_channels: C_mask (8 in the paper).
    """

    def __init__(self, in_channels: int, in_features: tuple[str, ...] = ("p3", "p4", "p5"),
                 channels: int = 128, num_convs: int = 4, out_channels: int = 8):
        super().__init__()
        self.in_features = tuple(in_features)
        self.stride = 2 ** int(self.in_features[0][1:])
        self.refine = nn.ModuleList([_conv_gn_relu(in_channels, channels) for _ in in_features])
        self.tower = nn.Sequential(*[_conv_gn_relu(channels, channels) for _ in range(num_convs)],
                                   nn.Conv2d(channels, out_channels, 1))
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        """feats: FPN outputs by name -> ``[B, out_channels, H_m, W_m]`` at ``self.stride``."""
        x = None
        for name, refine in zip(self.in_features, self.refine):
            y = refine(feats[name])
            if x is None:
                x = y
            else:
                # bilinear, align_corners=False keeps pixel centres (j s + s/2) aligned across levels
                x = x + F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.tower(x)
