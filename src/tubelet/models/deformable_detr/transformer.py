"""Deformable DETR's transformer (Zhu et al. ICLR 2021): encoder, decoder, box refinement.

    feature maps [B, D, H_l, W_l] (L levels) + sine positions + level embeddings
      -> encoder: E layers of multi-scale deformable self-attention + FFN -> memory [B, S, D]
      -> decoder: N learned queries, each layer = self-attention, deformable cross-attention to the
         memory around the query's reference box, FFN -> hs [N_dec, B, Q, D]

Iterative box refinement (paper Sec. 4.1 / App. A.4): layer 0's reference is a point
``sigmoid(Linear(query_pos))``; decoder layer d predicts
``box_d = sigmoid(Δ_d + inverse_sigmoid(ref_d))``
(only (cx, cy) are offset when ref_d is a point; (w, h) come from ``sigmoid(Δ_d)``) and the next
layer's reference is ``box_d.detach()``: gradients do not flow between layers' boxes. Post-norm
layers, ReLU FFNs, as the original. No padding masks: a batch shares one (padded) image size, so
every level's valid ratio is 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tubelet.models.deformable_detr.box_ops import inverse_sigmoid
from tubelet.models.deformable_detr.ms_deform_attn import MSDeformAttn, Shapes
from tubelet.models.embed_head import EmbedHead


def sine_position_encoding(height: int, width: int, dim: int, temperature: float = 10000.0,
                           device=None, dtype=torch.float32) -> Tensor:
    """DETR's normalised sine encoding of pixel centres -> ``[dim, H, W]``.

    Channels ``[0, dim/2)`` encode y, ``[dim/2, dim)`` encode x; within each half, pairs
    (2i, 2i+1) are (sin, cos) of ``u / temperature^(2i / (dim/2))`` where
    ``u = (index + 0.5) / size * 2 pi`` (Deformable DETR's centred normalisation).
    """
    if dim % 4:
        raise ValueError(f"position encoding width {dim} must be a multiple of 4")
    npf = dim // 2
    eps, scale = 1e-6, 2 * math.pi
    y = (torch.arange(height, device=device, dtype=dtype) + 0.5) / (height + eps) * scale
    x = (torch.arange(width, device=device, dtype=dtype) + 0.5) / (width + eps) * scale
    idx = torch.arange(npf, device=device, dtype=dtype)
    dim_t = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / npf)  # [npf]

    def enc(u: Tensor) -> Tensor:  # [n] -> [n, npf], interleaved sin / cos
        a = u[:, None] / dim_t
        return torch.stack([a[:, 0::2].sin(), a[:, 1::2].cos()], dim=2).flatten(1)

    pos_y = enc(y)[:, None, :].expand(height, width, npf)
    pos_x = enc(x)[None, :, :].expand(height, width, npf)
    return torch.cat([pos_y, pos_x], dim=2).permute(2, 0, 1)  # [dim, H, W]


def encoder_reference_points(spatial_shapes: Shapes, batch: int, n_levels: int,
                             device=None, dtype=torch.float32) -> Tensor:
    """Normalised pixel centres of every level, repeated for every level -> ``[B, S, L, 2]`` (x, y)."""
    refs = []
    for h, w in spatial_shapes:
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        refs.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], -1))  # [H_l W_l, 2]
    ref = torch.cat(refs)  # [S, 2]
    return ref[None, :, None, :].expand(batch, ref.shape[0], n_levels, 2)


class _FFN(nn.Module):
    """``x + dropout(W2 dropout(relu(W1 x)))`` followed by LayerNorm (post-norm)."""

    def __init__(self, d_model: int, dim_ff: int, dropout: float):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d_model, dim_ff), nn.Linear(dim_ff, d_model)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.drop2(self.linear2(self.drop1(F.relu(self.linear1(x))))))


class EncoderLayer(nn.Module):
    """Deformable self-attention over all levels + FFN; ``forward(src [B, S, D], pos [B, S, D],
    ref [B, S, L, 2], spatial_shapes) -> [B, S, D]``."""

    def __init__(self, d_model: int, dim_ff: int, dropout: float, n_levels: int, n_heads: int,
                 n_points: int):
        super().__init__()
        self.attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.ffn = _FFN(d_model, dim_ff, dropout)

    def forward(self, src: Tensor, pos: Tensor, ref: Tensor, spatial_shapes: Shapes) -> Tensor:
        src = self.norm(src + self.drop(self.attn(src + pos, ref, src, spatial_shapes)))
        return self.ffn(src)


class DecoderLayer(nn.Module):
    """Query self-attention, deformable cross-attention to the memory, FFN (post-norm each)."""

    def __init__(self, d_model: int, dim_ff: int, dropout: float, n_levels: int, n_heads: int,
                 n_points: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.drop1, self.norm1 = nn.Dropout(dropout), nn.LayerNorm(d_model)
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.drop2, self.norm2 = nn.Dropout(dropout), nn.LayerNorm(d_model)
        self.ffn = _FFN(d_model, dim_ff, dropout)

    def forward(self, tgt: Tensor, query_pos: Tensor, ref: Tensor, memory: Tensor,
                spatial_shapes: Shapes) -> Tensor:
        """tgt, query_pos ``[B, Q, D]``; ref ``[B, Q, L, 2 | 4]``; memory ``[B, S, D]``
        -> ``[B, Q, D]``."""
        q = tgt + query_pos  # positions enter queries and keys, not values (DETR)
        tgt = self.norm1(tgt + self.drop1(self.self_attn(q, q, tgt, need_weights=False)[0]))
        tgt = self.norm2(tgt + self.drop2(self.cross_attn(tgt + query_pos, ref, memory,
                                                          spatial_shapes)))
        return self.ffn(tgt)


class DeformableTransformer(nn.Module):
    """Encoder + decoder with learned queries and iterative box refinement.

    Args:
        d_model: width D. n_heads: attention heads. num_encoder_layers, num_decoder_layers: depths.
        dim_feedforward: FFN width. dropout: dropout rate. n_levels: feature levels L.
        n_points: sampling points per head and level. num_queries: Q.
    """

    def __init__(self, d_model: int = 256, n_heads: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 1024, dropout: float = 0.1,
                 n_levels: int = 4, n_points: int = 4, num_queries: int = 300):
        super().__init__()
        args = (d_model, dim_feedforward, dropout, n_levels, n_heads, n_points)
        self.encoder = nn.ModuleList([EncoderLayer(*args) for _ in range(num_encoder_layers)])
        self.decoder = nn.ModuleList([DecoderLayer(*args) for _ in range(num_decoder_layers)])
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        self.query_embed = nn.Embedding(num_queries, 2 * d_model)  # (query_pos, tgt) halves
        self.reference_points = nn.Linear(d_model, 2)
        # one box head per decoder layer: MLP D-D-4 (3 layers) predicting Δ in inverse-sigmoid space
        self.bbox_embed = nn.ModuleList([EmbedHead(d_model, d_model, 4, 3)
                                         for _ in range(num_decoder_layers)])
        self.d_model, self.n_levels = d_model, n_levels
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for layer in [*self.encoder, *self.decoder]:
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
            for m in layer.modules():
                if isinstance(m, MSDeformAttn):
                    m.reset_parameters()
        nn.init.xavier_uniform_(self.reference_points.weight)
        nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)
        for d, head in enumerate(self.bbox_embed):
            nn.init.zeros_(head.layers[-1].weight)
            nn.init.zeros_(head.layers[-1].bias)
            if d == 0:  # first boxes start small: (w, h) = sigmoid(-2) ~ 0.12 of the image
                nn.init.constant_(head.layers[-1].bias[2:], -2.0)

    def encode(self, srcs: list[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """L maps ``[B, D, H_l, W_l]`` -> memory ``[B, S, D]`` and the L (H_l, W_l)."""
        if len(srcs) != self.n_levels:
            raise ValueError(f"expected {self.n_levels} feature levels, got {len(srcs)}")
        shapes = [tuple(s.shape[-2:]) for s in srcs]
        flat, pos = [], []
        for lvl, src in enumerate(srcs):
            h, w = shapes[lvl]
            flat.append(src.flatten(2).transpose(1, 2))  # [B, H_l W_l, D]
            p = sine_position_encoding(h, w, self.d_model, device=src.device, dtype=src.dtype)
            pos.append(p.flatten(1).transpose(0, 1) + self.level_embed[lvl])  # [H_l W_l, D]
        x = torch.cat(flat, 1)  # [B, S, D]
        pos_all = torch.cat(pos, 0)[None].expand_as(x)
        ref = encoder_reference_points(shapes, x.shape[0], self.n_levels, x.device, x.dtype)
        for layer in self.encoder:
            x = layer(x, pos_all, ref, shapes)
        return x, shapes

    def decode(self, memory: Tensor, shapes: Shapes) -> tuple[Tensor, Tensor]:
        """Memory ``[B, S, D]`` -> (hs ``[N_dec, B, Q, D]``, boxes ``[N_dec, B, Q, 4]`` cxcywh
        in [0, 1])."""
        b = memory.shape[0]
        query_pos, tgt = self.query_embed.weight.split(self.d_model, dim=1)  # [Q, D] each
        query_pos = query_pos[None].expand(b, -1, -1)
        x = tgt[None].expand(b, -1, -1)
        ref = self.reference_points(query_pos).sigmoid()  # [B, Q, 2], learned, not detached
        hs, boxes = [], []
        for layer, box_head in zip(self.decoder, self.bbox_embed):
            ref_l = ref[:, :, None].expand(-1, -1, self.n_levels, -1)  # [B, Q, L, 2|4]
            x = layer(x, query_pos, ref_l, memory, shapes)
            delta = box_head(x)  # [B, Q, 4]
            if ref.shape[-1] == 4:
                box = (delta + inverse_sigmoid(ref)).sigmoid()
            else:
                box = torch.cat([delta[..., :2] + inverse_sigmoid(ref), delta[..., 2:]], -1).sigmoid()
            hs.append(x)
            boxes.append(box)
            ref = box.detach()  # refinement: the next layer starts from this box, no gradient
        return torch.stack(hs), torch.stack(boxes)

    def forward(self, srcs: list[Tensor]) -> tuple[Tensor, list[tuple[int, int]], Tensor, Tensor]:
        """L maps ``[B, D, H_l, W_l]`` -> (memory ``[B, S, D]``, shapes, hs ``[N_dec, B, Q, D]``,
        boxes ``[N_dec, B, Q, 4]``)."""
        memory, shapes = self.encode(srcs)
        hs, boxes = self.decode(memory, shapes)
        return memory, shapes, hs, boxes
