"""Multi-scale deformable attention (Deformable DETR, Zhu et al. ICLR 2021, Eq. 3), pure PyTorch.

For a query q with reference point p_q (normalised, per level), each of M heads samples K points on
each of L feature levels at ``p_q + Δp_{mlqk}`` and sums them with softmax weights A_{mlqk}
(normalised over the L*K samples of a head)::

    MSDeformAttn(z_q, p_q, {x_l}) = sum_m W_m [ sum_l sum_k A_mlqk * W'_m x_l(phi_l(p_q) + Δp_mlqk) ]

Sampling is bilinear with zero padding outside the map and ``align_corners=False`` semantics
(a location u in [0, 1] maps to pixel coordinate u * W - 0.5), as the original CUDA op. Here it is
done with :func:`torch.nn.functional.grid_sample` per level (:func:`ms_deform_attn_core`); a compiled
kernel can be plugged in through the ``core`` argument of :class:`MSDeformAttn` (same signature),
none is importable in this environment.

Offsets: with 2-d reference points (x, y) they are in pixels of each level (divided by (W_l, H_l));
with 4-d reference boxes (cx, cy, w, h) they are relative to the box: ``Δ / K * (w, h) * 0.5``
(Deformable DETR's box-refinement decoder).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Shapes = Sequence[tuple[int, int]]  # (H_l, W_l) of each level, fine -> coarse


def ms_deform_attn_core(value: Tensor, spatial_shapes: Shapes, sampling_locations: Tensor,
                        attention_weights: Tensor) -> Tensor:
    """Weighted bilinear sampling of multi-level values (the op the CUDA kernel implements).

    Args:
        value: ``[B, S, M, D_h]`` per-head values of all levels flattened, S = sum_l H_l W_l
            (level l's pixels row-major, levels in ``spatial_shapes`` order).
        spatial_shapes: L pairs (H_l, W_l).
        sampling_locations: ``[B, Lq, M, L, K, 2]`` (x, y) in [0, 1] of each level's map.
        attention_weights: ``[B, Lq, M, L, K]``.

    Returns:
        ``[B, Lq, M * D_h]``.
    """
    b, s, m, dh = value.shape
    _, lq, _, n_levels, k, _ = sampling_locations.shape
    if s != sum(h * w for h, w in spatial_shapes) or n_levels != len(spatial_shapes):
        raise ValueError(f"value has {s} positions, spatial shapes {list(spatial_shapes)}")
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    # Points before queries, so grid_sample's output [B*M, D_h, K, Lq] is reduced over K by an
    # elementwise multiply-add along contiguous rows: no transposed copy of the samples (the
    # query-major layout with a batched matmul took ~1.5x the time at 192x320, width 64). The
    # copies are made contiguous: with B = 1 the permuted reshapes are strided views, and strided
    # grids / weights send grid_sample and the product down paths several times slower (measured).
    grids = (2 * sampling_locations - 1).permute(3, 0, 2, 4, 1, 5).reshape(
        n_levels, b * m, k, lq, 2).contiguous()  # [L, B*M, K, Lq, 2], grid_sample's [-1, 1]
    weights = attention_weights.permute(3, 0, 2, 4, 1).reshape(
        n_levels, b * m, 1, k, lq).contiguous()  # [L, B*M, 1, K, Lq]
    out = None
    for lvl, (h, w) in enumerate(spatial_shapes):
        v = values[lvl].permute(0, 2, 3, 1).reshape(b * m, dh, h, w)  # [B*M, D_h, H_l, W_l]
        sampled = F.grid_sample(v, grids[lvl], mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # [B*M, D_h, K, Lq]
        part = (sampled * weights[lvl]).sum(2)  # [B*M, D_h, Lq]
        out = part if out is None else out + part
    return out.view(b, m, dh, lq).permute(0, 3, 1, 2).reshape(b, lq, m * dh)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module.

    Args:
        d_model: width D (256 in the paper).
        n_levels: feature levels L (4).
        n_heads: heads M (8); D must be divisible by M.
        n_points: sampling points K per head and level (4).
        core: the sampling op, :func:`ms_deform_attn_core` by default; a compiled kernel with the
            same signature can be passed instead.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
                 core: Callable[..., Tensor] | None = None):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.core = core or ms_deform_attn_core
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's init: zero offset weights, offset biases on a ring of M directions
        (head m points at angle 2 pi m / M, scaled to the unit square's border, point k at distance
        k + 1), uniform attention (zero weights and biases), Xavier value / output projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)  # [M, 2]
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid[:, None, None, :].repeat(1, self.n_levels, self.n_points, 1)  # [M, L, K, 2]
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32)[None, None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def sampling(self, query: Tensor, reference_points: Tensor,
                 spatial_shapes: Shapes) -> tuple[Tensor, Tensor]:
        """Sampling locations ``[B, Lq, M, L, K, 2]`` and weights ``[B, Lq, M, L, K]`` of the queries.

        Args:
            query: ``[B, Lq, D]`` (content + position).
            reference_points: ``[B, Lq, L, 2]`` (x, y) or ``[B, Lq, L, 4]`` (cx, cy, w, h), in [0, 1].
            spatial_shapes: L pairs (H_l, W_l).
        """
        b, lq, _ = query.shape
        m, n_levels, k = self.n_heads, self.n_levels, self.n_points
        offsets = self.sampling_offsets(query)  # [B, Lq, M*L*K*2]
        weights = self.attention_weights(query).view(b, lq, m, n_levels * k)
        weights = weights.softmax(-1).view(b, lq, m, n_levels, k)  # over a head's L*K samples
        ref = reference_points[:, :, None, :, None, :]  # [B, Lq, 1, L, 1, 2|4]
        if reference_points.shape[-1] == 2:
            # offsets in pixels of each level: divide by (W_l, H_l), spelled out along the flat
            # output of the linear layer so the division runs on contiguous rows
            norm = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=query.dtype,
                                device=query.device)  # [L, 2]
            norm = norm[None, :, None, :].expand(m, n_levels, k, 2).reshape(-1)  # [M*L*K*2]
            loc = ref + (offsets / norm).view(b, lq, m, n_levels, k, 2)
        elif reference_points.shape[-1] == 4:
            offsets = offsets.view(b, lq, m, n_levels, k, 2)
            loc = ref[..., :2] + offsets / k * ref[..., 2:] * 0.5
        else:
            raise ValueError(f"reference points must end in 2 or 4, got {reference_points.shape}")
        return loc, weights

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor,
                spatial_shapes: Shapes, padding_mask: Tensor | None = None) -> Tensor:
        """Attend from ``query [B, Lq, D]`` to ``value [B, S, D]`` (all levels flattened).

        Args:
            query: ``[B, Lq, D]``.
            reference_points: ``[B, Lq, L, 2 | 4]``, see :meth:`sampling`.
            value: ``[B, S, D]``, S = sum_l H_l W_l.
            spatial_shapes: L pairs (H_l, W_l).
            padding_mask: optional ``[B, S]`` bool, True at padded positions (their values are 0).

        Returns:
            ``[B, Lq, D]``.
        """
        b, s, _ = value.shape
        v = self.value_proj(value)
        if padding_mask is not None:
            v = v.masked_fill(padding_mask[..., None], 0.0)
        v = v.view(b, s, self.n_heads, self.d_model // self.n_heads)  # [B, S, M, D_h]
        loc, weights = self.sampling(query, reference_points, spatial_shapes)
        return self.output_proj(self.core(v, spatial_shapes, loc, weights))
