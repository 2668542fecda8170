"""IAI's classification projector: C5 in and out of the association block (REFERENCE_NOTES §3).

The block's input is C5 projected to the block width D by a 1x1 conv. The FPN's C5 input is then
replaced by ``concat[proj C5 (D), block output (D), 1x1 conv C5 (C5 - 2D)]``, whose channel count
equals the original C5's (2048 = 256 + 256 + 1536 on ResNet-50), so the FPN and every layer after
it keep their shapes: appearance features (for classification) travel next to the associated ones.

``enabled=False`` (the Table 5 ablation without the projector) is our reading of the paper, which
does not spell the wiring out: the FPN's C5 input is the block output alone, mapped back to C5's
channel count by a 1x1 conv.

Stride-16 variant (``top_channels``, a CPU deviation, ``assoc_level: c4`` of the model): the block
runs on C4 and the same concatenation replaces C4; so that P5..P7 (fed by C5 alone in the FPN) see
the associated features too, C5 is replaced by ``concat[2x2 max-pool of the block output (D),
1x1 conv C5 (C5 - D)]``, again C5's channel count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ClassificationProjector(nn.Module):
    """C5 <-> association block wiring.

    Args:
        c5_channels: channels of the level the block runs on (C5 in the paper: 2048 ResNet-50,
            320 MobileNetV2; C4's 96 on MobileNetV2 in the stride-16 variant).
        dim: block width D (256); with ``enabled`` it must satisfy ``2 D <= c5_channels``.
        enabled: use the concatenation (True, the paper) or the block output alone (False).
        top_channels: the last stage's channels when the block runs one level below it (stride-16
            variant; :meth:`top`), else None.
    """

    def __init__(self, c5_channels: int, dim: int = 256, enabled: bool = True,
                 top_channels: int | None = None):
        super().__init__()
        self.c5_channels, self.dim, self.enabled = c5_channels, dim, enabled
        self.to_block = nn.Conv2d(c5_channels, dim, 1)
        self.rest: nn.Conv2d | None = None
        self.from_block: nn.Conv2d | None = None
        if enabled:
            rest = c5_channels - 2 * dim
            if rest < 0:
                raise ValueError(f"the projector concatenates 2 x {dim} block channels into "
                                 f"C5's {c5_channels}: use a block width <= {c5_channels // 2}")
            self.rest = nn.Conv2d(c5_channels, rest, 1) if rest > 0 else None
        else:
            self.from_block = nn.Conv2d(dim, c5_channels, 1)
        self.top_rest: nn.Conv2d | None = None
        if top_channels is not None:
            if top_channels <= dim:
                raise ValueError(f"the last stage's {top_channels} channels cannot hold the "
                                 f"pooled {dim} block channels")
            self.top_rest = nn.Conv2d(top_channels, top_channels - dim, 1)

    def block_input(self, c5: Tensor) -> Tensor:
        """c5 ``[B, C5, h, w]`` -> ``[B, D, h, w]`` (the block's input)."""
        return self.to_block(c5)

    def forward(self, c5: Tensor, block_in: Tensor, block_out: Tensor) -> Tensor:
        """The FPN's new C5.

        Args:
            c5: ``[B, C5, h, w]`` backbone output.
            block_in: ``[B, D, h, w]`` :meth:`block_input` of it.
            block_out: ``[B, D, h, w]`` the association block's output.

        Returns:
            ``[B, C5, h, w]``.
        """
        if not self.enabled:
            return self.from_block(block_out)
        parts = [block_in, block_out] + ([self.rest(c5)] if self.rest is not None else [])
        return torch.cat(parts, dim=1)

    def top(self, c5: Tensor, block_out: Tensor) -> Tensor:
        """The stride-16 variant's new C5.

        Args:
            c5: ``[B, C5, h/2, w/2]`` backbone output of the last stage.
            block_out: ``[B, D, h, w]`` the block's output on C4.

        Returns:
            ``[B, C5, h/2, w/2]``: ``concat[maxpool_2x2(block_out), 1x1 conv c5]``.
        """
        if self.top_rest is None:
            raise ValueError("this projector has no top level (built without top_channels)")
        pooled = F.max_pool2d(block_out, 2, ceil_mode=True)  # ceil(h/2) = C5's size
        if pooled.shape[-2:] != c5.shape[-2:]:
            raise ValueError(f"pooled block output {tuple(pooled.shape[-2:])} does not match "
                             f"the last stage {tuple(c5.shape[-2:])}")
        return torch.cat([pooled, self.top_rest(c5)], dim=1)
