"""SPP and the YOLOv4+1 feature pyramid: FPN/PAN extended to p2, aggregating by concatenation.

Paper §3.2 (Figure 1): the YOLOv4 neck gains one level in both pathways (b2, p2, n2, stride 4).
Each step "aggregates the reconstructed layer with the corresponding feature map after one
convolution, an upsampling (resp. down-sampling) and a second convolution with the same one
dimensional kernel. After the concatenation, a kernel of size 1 is alternated with a kernel of
size 3 doubling the channels dimension." That is YOLOv4's PANet variant:

    top-down  p_l = block(cat[up(conv1x1(p_{l+1})), conv1x1(c_l)])      l = 4, 3, 2
    bottom-up n_l = block(cat[conv3x3/2(n_{l-1}), p_l])                 l = 3, 4, 5;  n_2 = p_2
    (with three levels, as YOLOv4 itself, l stops at 3 and n_3 = p_3)
    block     = 1x1 (n) -> 3x3 (2n) -> 1x1 (n) -> 3x3 (2n) -> 1x1 (n)   (``block_convs`` = 5)

with concatenation where PANet adds. p_5 is SPP's output on c5 (YOLOv3/v4: 1x1, 3x3, 1x1, max-pools
5/9/13 concatenated with their input, 1x1, 3x3, 1x1). The neck uses leaky ReLU as in YOLOv4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tubelet.models.yolov4.layers import conv_bn_act

LEVELS = ("2", "3", "4", "5")  # pyramid levels, strides 4, 8, 16, 32


def conv_block(c_in: int, c: int, convs: int, act: str) -> nn.Sequential:
    """Alternating 1x1 (``c``) / 3x3 (``2c``) convs, ``convs`` in all (odd), ending on a 1x1 to ``c``.

    ``[B, c_in, H, W] -> [B, c, H, W]``.
    """
    if convs < 1 or convs % 2 == 0:
        raise ValueError(f"block_convs must be odd and >= 1, got {convs}")
    layers = [conv_bn_act(c_in, c, 1, act=act)]
    for _ in range(convs // 2):
        layers += [conv_bn_act(c, 2 * c, 3, act=act), conv_bn_act(2 * c, c, 1, act=act)]
    return nn.Sequential(*layers)


class SPP(nn.Module):
    """Spatial pyramid pooling of YOLOv3/v4 (He et al. 2015, stride-1 max-pools concatenated).

    ``[B, c_in, H, W] -> [B, c, H, W]``: 1x1 (c), 3x3 (2c), 1x1 (c), cat[x, maxpool_k(x) for k]
    (``(1 + len(kernels)) c`` channels), 1x1 (c), 3x3 (2c), 1x1 (c).

    Kernels k, 2k - 1, 3k - 2, ... (5, 9, 13) are computed as a cascade of k x k pools: with
    stride 1 and -inf padding, pooling twice with k gives exactly the (2k - 1) window, and the
    cascade costs 3 x 25 comparisons per pixel instead of 25 + 81 + 169 (measured on one CPU
    thread, 128 channels: 2.7 -> 1.5 ms at 6 x 10, 13.7 -> 5.4 ms at 12 x 20).
    """

    def __init__(self, c_in: int, c: int, kernels: tuple[int, ...] = (5, 9, 13), act: str = "leaky"):
        super().__init__()
        self.pre = conv_block(c_in, c, 3, act)
        self.kernels = tuple(kernels)
        k0 = self.kernels[0]
        self.cascade = self.kernels == tuple(1 + (k0 - 1) * (i + 1) for i in range(len(kernels)))
        sizes = (k0,) * len(kernels) if self.cascade else self.kernels
        self.pools = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in sizes])
        self.post = conv_block((1 + len(kernels)) * c, c, 3, act)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre(x)
        pooled, y = [], x
        for p in self.pools:
            y = p(y if self.cascade else x)
            pooled.append(y)
        return self.post(torch.cat([x] + pooled, dim=1))


class PAN(nn.Module):
    """SPP + top-down + bottom-up pyramid; with 4 widths over c2..c5 (outputs n2..n5, strides 4..32,
    the paper's), with 3 over c3..c5 (n3..n5, YOLOv4's own neck: the "p2 off" ablation).

    Args:
        in_channels: backbone widths ``{"c2"?: C2, "c3": C3, "c4": C4, "c5": C5}``.
        channels: neck width per output level, finest first, e.g. (64, 128, 256, 512) (YOLOv4's
            128/256/512 for n3..n5 extended to 64 at n2).
        block_convs: convs per aggregation block (5 in YOLOv4; 3 or 1 for a faster CPU neck).
        act: neck activation (leaky in YOLOv4).
        spp_kernels: SPP max-pool sizes.
    """

    def __init__(self, in_channels: dict[str, int], channels: tuple[int, ...] = (64, 128, 256, 512),
                 block_convs: int = 5, act: str = "leaky", spp_kernels: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        if len(channels) not in (3, 4):
            raise ValueError(f"need 3 (n3..n5) or 4 (n2..n5) neck widths, got {channels}")
        self.levels = LEVELS[-len(channels):]  # e.g. ("2", "3", "4", "5")
        n = dict(zip(self.levels, channels))
        self.channels = tuple(channels)
        top_down = self.levels[-2::-1]  # ("4", "3", "2"): coarse -> fine, below the SPP level
        bottom_up = self.levels[1:]     # ("3", "4", "5"): fine -> coarse, above the finest level
        self.spp = SPP(in_channels["c5"], n["5"], tuple(spp_kernels), act)
        # top-down: reduce the coarser map, upsample, concatenate with the lateral projection
        self.td_reduce = nn.ModuleDict({l: conv_bn_act(n[str(int(l) + 1)], n[l], 1, act=act)
                                        for l in top_down})
        self.td_lateral = nn.ModuleDict({l: conv_bn_act(in_channels[f"c{l}"], n[l], 1, act=act)
                                         for l in top_down})
        self.td_block = nn.ModuleDict({l: conv_block(2 * n[l], n[l], block_convs, act)
                                       for l in top_down})
        # bottom-up: stride-2 3x3 down-sampling, concatenate with p_l
        self.bu_down = nn.ModuleDict({l: conv_bn_act(n[str(int(l) - 1)], n[l], 3, stride=2, act=act)
                                      for l in bottom_up})
        self.bu_block = nn.ModuleDict({l: conv_block(2 * n[l], n[l], block_convs, act)
                                       for l in bottom_up})
        self.out_features = [f"n{l}" for l in self.levels]
        self.out_channels = {f"n{l}": n[l] for l in self.levels}
        self.strides = {f"n{l}": 2 ** int(l) for l in self.levels}

    def forward(self, feats: dict[str, Tensor]) -> list[Tensor]:
        """``{"c2"?: [B, C2, H/4, W/4], ..., "c5"}`` -> ``[n2?, n3, n4, n5]``, each
        ``[B, n_l, H_l, W_l]`` with ``H_l`` the size of ``c_l``."""
        p = {"5": self.spp(feats["c5"])}
        for l in self.levels[-2::-1]:
            lat = self.td_lateral[l](feats[f"c{l}"])
            # size= rather than scale_factor=2: odd sizes make ceil(H/8) != 2 ceil(H/16)
            up = F.interpolate(self.td_reduce[l](p[str(int(l) + 1)]), size=lat.shape[-2:],
                               mode="nearest")
            p[l] = self.td_block[l](torch.cat([up, lat], dim=1))  # cat: [B, 2 n_l, H_l, W_l]
        out = {self.levels[0]: p[self.levels[0]]}
        for l in self.levels[1:]:
            down = self.bu_down[l](out[str(int(l) - 1)])
            out[l] = self.bu_block[l](torch.cat([down, p[l]], dim=1))
        return [out[l] for l in self.levels]
