"""IAI's classification projector: C5 in and out of the association block (REFERENCE_NOTES §3).

The block's input is C5 projected to the block width D by a 1x1 conv. The FPN's C5 input is then
replaced by ``concat[proj C5 (D), block output (D), 1x1 conv C5 (C5 - 2D)]``, whose channel count
equals the original C5's (2048 = 256 + 256 + 1536 on ResNet-50), so the FPN and every layer after
it keep their shapes: appearance features (for classification) travel next to the associated ones.

``enabled=False`` (the Table 5 ablation without the projector) is our reading of the paper, which
does not spell the wiring out: the FPN's C5 input is the block output alone, mapped back to C5's
channel count by a 1x1 conv.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ClassificationProjector(nn.Module):
    """C5 <-> association block wiring.

    Args:
        c5_channels: channels of the backbone's last stage (2048 ResNet-50, 320 MobileNetV2).
        dim: block width D (256); with ``enabled`` it must satisfy ``2 D <= c5_channels``.
        enabled: use the concatenation (True, the paper) or the block output alone (False).
    """

    def __init__(self, c5_channels: int, dim: int = 256, enabled: bool = True):
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
