"""DETR-side glue for CondInst's dynamic mask head (the SeqFormer / contrastive-online recipe).

Masks at stride 4: the shared :class:`~tubelet.models.condinst.MaskBranch` fuses the backbone's
stride-4 map C2 (projected to D by a 1x1 conv) with the encoder memory of the stride-8/16/32 levels
into ``F_mask [B, 8, H/4, W/4]``. Each query's decoder embedding gives its dynamic-head parameters
through a controller (a linear layer by default: 169 parameters for the paper's 3 layers x 8
channels), and the relative coordinates are taken from the query's predicted box centre
(detached: the mask loss does not move the box). The dynamic head itself is the one copy in
:mod:`tubelet.models.condinst.dynamic_mask`.

Relative-coordinate normaliser: SeqFormer normalises x by the image width and y by its height; the
shared head takes one scalar per instance, so here both axes are divided by ``max(H, W)`` of the
padded image (coordinates in [-1, 1] along the long side, a narrower range along the short one).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tubelet.models.condinst.dynamic_mask import DynamicMaskHead
from tubelet.models.condinst.mask_branch import MaskBranch
from tubelet.models.embed_head import EmbedHead


class QueryMaskHead(nn.Module):
    """Mask features, controller and dynamic head for query-based detectors.

    Args:
        d_model: decoder / memory width D.
        c2_channels: channels of the backbone's stride-4 map.
        memory_levels: encoder levels fused into the mask features (the stride-8, 16, 32 ones: 3).
        branch_channels, branch_convs: mask-branch width and tower depth.
        mask_channels: C_mask (8). dynamic_channels: dynamic head width (8).
        dynamic_layers: dynamic 1x1 conv layers (3).
        controller_layers: controller MLP depth (1 = linear).
    """

    def __init__(self, d_model: int, c2_channels: int, memory_levels: int = 3,
                 branch_channels: int = 128, branch_convs: int = 4, mask_channels: int = 8,
                 dynamic_channels: int = 8, dynamic_layers: int = 3, controller_layers: int = 1):
        super().__init__()
        if not 1 <= memory_levels <= 3:
            raise ValueError(f"memory_levels must be 1..3 (strides 8, 16, 32), got {memory_levels}")
        self.memory_levels = memory_levels
        self.c2_proj = nn.Conv2d(c2_channels, d_model, 1)
        names = ("p2", "p3", "p4", "p5")[: 1 + memory_levels]
        self.branch = MaskBranch(d_model, names, branch_channels, branch_convs, mask_channels)
        self.stride = self.branch.stride  # 4
        self.dynamic = DynamicMaskHead(mask_channels, dynamic_channels, dynamic_layers, True)
        self.controller = EmbedHead(d_model, d_model, self.dynamic.num_params, controller_layers)
        self.num_params = self.dynamic.num_params

    def mask_features(self, c2: Tensor, memory_maps: list[Tensor]) -> Tensor:
        """``c2 [B, C2, H/4, W/4]`` and encoder maps ``[B, D, H/s, W/s]`` (s = 8, 16, 32, at least
        ``memory_levels`` of them) -> ``F_mask [B, C_mask, H/4, W/4]``."""
        feats = {"p2": self.c2_proj(c2)}
        for i in range(self.memory_levels):
            feats[f"p{i + 3}"] = memory_maps[i]
        return self.branch(feats)

    def params(self, query_embeds: Tensor) -> Tensor:
        """``[..., D]`` decoder embeddings -> ``[..., P]`` dynamic-head parameters."""
        return self.controller(query_embeds)

    def forward(self, mask_feats: Tensor, params: Tensor, image_index: Tensor, boxes: Tensor,
                image_size: tuple[int, int]) -> Tensor:
        """Mask logits of N queries.

        Args:
            mask_feats: ``[B, C_mask, H_m, W_m]`` at stride 4.
            params: ``[N, P]`` controller outputs of the queries.
            image_index: ``[N]`` long, batch image of each query.
            boxes: ``[N, 4]`` (cx, cy, w, h) normalised predicted boxes (only the centre is used).
            image_size: padded (H, W) of the batch in pixels.

        Returns:
            ``[N, H_m, W_m]`` logits at stride 4.
        """
        h, w = image_size
        scale = boxes.new_tensor([w, h])
        centres = boxes[:, :2].detach() * scale  # [N, 2] (x, y) pixels
        norm = torch.full((boxes.shape[0],), float(max(h, w)), device=boxes.device,
                          dtype=boxes.dtype)
        return self.dynamic(mask_feats, self.stride, params, image_index, centres, norm)[:, 0]
