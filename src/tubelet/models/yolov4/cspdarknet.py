"""CSPDarknet53 with Mish (Bochkovskiy et al. 2020, YOLOv4 §3.4), with width/depth multipliers.

Layout of the full network (width = depth = 1), strides relative to the input:

    stem   3x3 conv, 32                                              stride 1
    stage1 3x3/2 conv 64,   CSP block, 1 residual  (split width 64)  stride 2
    stage2 3x3/2 conv 128,  CSP block, 2 residuals (split width 64)  stride 4   -> "c2"
    stage3 3x3/2 conv 256,  CSP block, 8 residuals                   stride 8   -> "c3"
    stage4 3x3/2 conv 512,  CSP block, 8 residuals                   stride 16  -> "c4"
    stage5 3x3/2 conv 1024, CSP block, 4 residuals                   stride 32  -> "c5"

A CSP block (Wang et al. 2020, CSPNet) splits the downsampled map into two 1x1 projections: one
goes through the residual blocks and a 1x1 transition, the other bypasses them; the two are
concatenated and fused by a 1x1 conv. In stage 1 both halves keep the full 64 channels and the
residual block narrows to 32 (Darknet's cfg); in later stages each half has C/2 channels.

YOLOv4+1seg uses the stride-4 map "c2" as the extra pyramid input b2 (paper §3.2, Figure 1), so
the backbone returns ``{"c2", "c3", "c4", "c5"}`` like :class:`tubelet.models.backbones.Backbone`
with ``return_c2=True``. There are no ImageNet weights for it offline: it trains from scratch.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tubelet.models.yolov4.layers import conv_bn_act, scale_depth, scale_width

STAGE_CHANNELS = (64, 128, 256, 512, 1024)  # stages 1..5 at width 1
STAGE_BLOCKS = (1, 2, 8, 8, 4)              # residual blocks per stage at depth 1
STEM_CHANNELS = 32


class Residual(nn.Module):
    """``x + conv3x3(conv1x1(x))``; ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, channels: int, hidden: int, act: str = "mish"):
        super().__init__()
        self.body = nn.Sequential(conv_bn_act(channels, hidden, 1, act=act),
                                  conv_bn_act(hidden, channels, 3, act=act))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class CSPStage(nn.Module):
    """Downsample by 2 then a CSP block: ``[B, c_in, H, W] -> [B, c_out, ceil(H/2), ceil(W/2)]``.

    Args:
        c_in, c_out: input and output channels.
        blocks: residual blocks on the processed half.
        split: channels of each half (``c_out // 2``, or ``c_out`` for Darknet's first stage).
        hidden: inner width of each residual block (``split``, or ``c_out // 2`` in stage 1).
    """

    def __init__(self, c_in: int, c_out: int, blocks: int, split: int, hidden: int,
                 act: str = "mish"):
        super().__init__()
        self.down = conv_bn_act(c_in, c_out, 3, stride=2, act=act)
        self.bypass = conv_bn_act(c_out, split, 1, act=act)
        self.main = nn.Sequential(conv_bn_act(c_out, split, 1, act=act),
                                  *[Residual(split, hidden, act) for _ in range(blocks)],
                                  conv_bn_act(split, split, 1, act=act))  # CSP transition
        self.fuse = conv_bn_act(2 * split, c_out, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        return self.fuse(torch.cat([self.main(x), self.bypass(x)], dim=1))  # [B, 2 split, H, W]


class CSPDarknet53(nn.Module):
    """CSPDarknet53 returning ``{"c2", "c3", "c4", "c5"}`` at strides 4, 8, 16, 32.

    Args:
        width: channel multiplier (1.0 = the paper's; 0.25 for the CPU variant).
        depth: residual-block multiplier (1.0 = 1-2-8-8-4 blocks; 0.33 -> 1-1-3-3-1).
        act: activation (Mish in YOLOv4's backbone).

    Attributes: ``out_channels`` and ``strides`` per output name (as the shared ``Backbone``).
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0, act: str = "mish"):
        super().__init__()
        chans = [scale_width(c, width) for c in STAGE_CHANNELS]
        stem = scale_width(STEM_CHANNELS, width)
        self.stem = conv_bn_act(3, stem, 3, act=act)
        stages, c_in = [], stem
        for i, (c, n) in enumerate(zip(chans, STAGE_BLOCKS)):
            first = i == 0
            split = c if first else c // 2
            hidden = c // 2 if first else split
            stages.append(CSPStage(c_in, c, scale_depth(n, depth), split, hidden, act))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.out_features = ["c2", "c3", "c4", "c5"]
        self.out_channels = dict(zip(self.out_features, chans[1:]))
        self.strides = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """images ``[B, 3, H, W]`` -> ``{"c2": [B, C2, H/4, W/4], ..., "c5": [B, C5, H/32, W/32]}``
        (sizes rounded up)."""
        x = self.stem(images)
        out = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 1:
                out[f"c{i + 1}"] = x
        return out
