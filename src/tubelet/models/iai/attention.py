"""Attention primitives of IAI's hybrid association block, as pure functions (REFERENCE_NOTES §3).

* :func:`sine_positions`: the 2-D sine/cosine position code of the self-attention (DETR-style: half
  the channels encode y, half x, at geometrically spaced frequencies).
* :func:`multihead_attention`: scaled dot-product attention split into heads, without in/out
  projections (the block projects queries, keys and values itself, as AOT's long-term attention).
* :func:`local_window_attention`: every query position attends only to the previous frame's keys in
  a ``window x window`` neighbourhood around the same position (15 x 15 in IAI; AOT's short-term
  attention). Positions outside the map take no part in the softmax. Small maps (the CPU
  presets') run it as one dense attention with the out-of-window keys masked; larger ones with
  ``F.unfold`` (n = window² keys per query); plain PyTorch on any device either way; the test
  compares both with an explicit loop over positions.
* :class:`DropPath`: stochastic depth on residual branches (0.1 in IAI).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sine_positions(height: int, width: int, dim: int, temperature: float = 10000.0,
                   device=None) -> Tensor:
    """2-D sine position code.

    Channel ``2k`` of the y half is ``sin(y / T^(2k/(dim/2)))``, channel ``2k + 1`` the cosine at
    the same frequency, with ``y = (i + 0.5) / height * 2 pi`` for row i; the x half likewise with
    columns. Output ``[height * width, dim]``, rows in row-major order, y half first.
    """
    if dim % 4:
        raise ValueError(f"sine position width must be a multiple of 4, got {dim}")
    half = dim // 2
    k = torch.arange(half, device=device, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)  # [half]
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi
    even = (torch.arange(half, device=device) % 2 == 0)

    def code(v: Tensor) -> Tensor:  # [n] -> [n, half]
        a = v[:, None] / freq[None, :]
        return torch.where(even, torch.sin(a), torch.cos(a))

    py = code(ys)[:, None, :].expand(height, width, half)  # [H, W, half]
    px = code(xs)[None, :, :].expand(height, width, half)
    return torch.cat([py, px], dim=2).reshape(height * width, dim)


def multihead_attention(q: Tensor, k: Tensor, v: Tensor, num_heads: int) -> Tensor:
    """Scaled dot-product attention over heads, no projections.

    Args:
        q: ``[B, Lq, D]`` queries; k, v: ``[B, Lk, D]`` keys / values; D divisible by num_heads.

    Returns:
        ``[B, Lq, D]``; zeros when ``Lk == 0`` (nothing stored yet).
    """
    b, lq, d = q.shape
    if k.shape[1] == 0:
        return q.new_zeros(b, lq, d)
    if d % num_heads:
        raise ValueError(f"width {d} is not divisible by {num_heads} heads")

    def split(x: Tensor) -> Tensor:  # [B, L, D] -> [B, heads, L, D/heads]
        return x.reshape(b, x.shape[1], num_heads, d // num_heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))  # [B, heads, Lq, D/heads]
    return out.transpose(1, 2).reshape(b, lq, d)


#: maps of at most this many positions take the dense masked path of local_window_attention
#: (HW x HW logits; 920 at 360x640 and stride 16); larger ones unfold the windows (n x HW).
DENSE_LOCAL_MAX = 4096


@functools.lru_cache(maxsize=4)  # a video has one size
def window_mask(height: int, width: int, window: int, device: torch.device | str = "cpu"
                ) -> Tensor:
    """``[HW, HW]`` bool, row-major positions: True where key (row of the column index) lies in
    the ``window x window`` neighbourhood of the query (row index)."""
    r = window // 2
    ys = torch.arange(height, device=device).repeat_interleave(width)  # [HW]
    xs = torch.arange(width, device=device).repeat(height)
    return ((ys[:, None] - ys[None, :]).abs() <= r) & ((xs[:, None] - xs[None, :]).abs() <= r)


def local_window_attention(q: Tensor, k: Tensor, v: Tensor, num_heads: int,
                           window: int = 15) -> Tensor:
    """Windowed attention of each position onto a neighbourhood of another map.

    For the query at (i, j) and each head, the softmax runs over the keys at (i + dy, j + dx),
    ``|dy|, |dx| <= window // 2``, that lie inside the map (logits scaled by 1/sqrt(D/heads)).

    Args:
        q: ``[B, D, H, W]`` queries (current frame); k, v: ``[B, D, H, W]`` keys / values (previous
            frame, same size).
        num_heads: heads (2 in IAI); D divisible by it.
        window: odd side of the square neighbourhood (15 in IAI).

    Returns:
        ``[B, D, H, W]``.
    """
    if q.shape != k.shape or k.shape != v.shape:
        raise ValueError(f"local attention needs equal shapes, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if window % 2 == 0:
        raise ValueError(f"window must be odd, got {window}")
    b, d, h, w = q.shape
    if d % num_heads:
        raise ValueError(f"width {d} is not divisible by {num_heads} heads")
    dh, r, n = d // num_heads, window // 2, window * window
    if h * w <= DENSE_LOCAL_MAX:
        # every query against every key, the keys outside its window masked out: the same
        # softmax, as one fused attention call (no im2col copy of keys and values)
        def heads(x: Tensor) -> Tensor:  # [B, D, H, W] -> [B, heads, HW, dh]
            return x.reshape(b, num_heads, dh, h * w).transpose(2, 3)
        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v),
                                             attn_mask=window_mask(h, w, window, q.device))
        return out.transpose(2, 3).reshape(b, d, h, w)
    qh = q.reshape(b * num_heads, dh, h * w)  # [BH, dh, HW]
    # unfold: [BH, dh * n, HW], the n window offsets of every position (zero outside the map)
    kw = F.unfold(k.reshape(b * num_heads, dh, h, w), window, padding=r).view(-1, dh, n, h * w)
    vw = F.unfold(v.reshape(b * num_heads, dh, h, w), window, padding=r).view(-1, dh, n, h * w)
    logits = torch.einsum("bcp,bcnp->bnp", qh, kw) / math.sqrt(dh)  # [BH, n, HW]
    inside = F.unfold(q.new_ones(1, 1, h, w), window, padding=r) > 0  # [1, n, HW]
    logits = logits.masked_fill(~inside, float("-inf"))  # the centre is always inside
    attn = torch.softmax(logits, dim=1)
    out = torch.einsum("bnp,bcnp->bcp", attn, vw)  # [BH, dh, HW]
    return out.reshape(b, d, h, w)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch for a whole sample with probability
    ``p`` and scale the kept ones by ``1 / (1 - p)``; identity in evaluation."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """x ``[B, ...]`` -> same shape."""
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)
