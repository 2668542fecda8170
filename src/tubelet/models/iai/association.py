"""IAI's hybrid association block (HAB, Sec. 3.3; one layer, REFERENCE_NOTES §3).

On the current frame's tokens x (``[B, HW, D]`` from the C5 projection, D = 256)::

    x = x + DropPath(SelfAttn_4heads(q = k = LN1(x) + pos, v = LN1(x)))          # sine positions
    n = LN2(x);  key = Linear_k(n)                                             # query = key
    x = x + DropPath(Out_g(GlobalAttn_2heads(key, K_mem, V_mem))                # long-term memory
                     + Out_l(LocalAttn_2heads_15x15(key, K_prev, V_prev)))     # short-term memory
    x = x + DropPath(Linear_2(DWConv5x5(GELU(GN(Linear_1(LN3(x)))))))         # FFN 256-1024-256
    out = LN_out(x)

The frame's own memory entry is written after its IDs are known: keys ``Linear_k(n)`` and values
``Linear_v(n + E)`` with E the ID-bank embedding of its ID mask (keys without IDs, values with
them, as in AOT whose block this follows). The queries share the key projection, so a frame's keys
come out of the forward pass and only its values wait for the IDs.

The two memory attentions have no in-projections (the shared ``Linear_k`` / ``Linear_v`` are
them) and one output projection each; their outputs are summed into one residual. AOT's
relative-position term in the short-term attention is not used (the notes do not list it).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from tubelet.models.condinst.fcos import group_norm
from tubelet.models.iai.attention import (DropPath, local_window_attention, multihead_attention,
                                          sine_positions)


@dataclass
class BlockOutput:
    """One frame through the block (B clips, D width, an h x w map).

    Attributes:
        out: ``[B, D, h, w]`` associated features (into the classification projector).
        normed: ``[B, hw, D]`` LN2 of the tokens; the memory values are ``Linear_v(normed + E)``.
        keys: ``[B, hw, D]`` this frame's keys (its memory keys; also the queries used here).
    """
    out: Tensor
    normed: Tensor
    keys: Tensor


def _to_map(tokens: Tensor, h: int, w: int) -> Tensor:
    """``[B, hw, D]`` -> ``[B, D, h, w]``."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


class AssociationBlock(nn.Module):
    """One hybrid association layer; see the module docstring.

    Args:
        dim: token width D (256 in IAI).
        self_heads, global_heads, local_heads: heads of the three attentions (4, 2, 2).
        window: side of the short-term attention window (15).
        ffn_dim: FFN hidden width (1024).
        dw_kernel: depthwise conv kernel inside the FFN (5).
        drop_path: stochastic-depth probability on every residual branch (0.1).
        use_global, use_local: the long- / short-term attention on or off (Table 5 ablations).
    """

    def __init__(self, dim: int = 256, self_heads: int = 4, global_heads: int = 2,
                 local_heads: int = 2, window: int = 15, ffn_dim: int = 1024, dw_kernel: int = 5,
                 drop_path: float = 0.1, use_global: bool = True, use_local: bool = True):
        super().__init__()
        for heads in (self_heads, global_heads, local_heads):
            if dim % heads:
                raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.dim, self.window = dim, window
        self.global_heads, self.local_heads = global_heads, local_heads
        self.use_global, self.use_local = use_global, use_local
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, self_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.to_key = nn.Linear(dim, dim)
        self.to_value = nn.Linear(dim, dim)
        self.global_out = nn.Linear(dim, dim)
        self.local_out = nn.Linear(dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, ffn_dim)
        self.ffn_norm = group_norm(ffn_dim)
        self.ffn_act = nn.GELU()
        self.ffn_dw = nn.Conv2d(ffn_dim, ffn_dim, dw_kernel, padding=dw_kernel // 2,
                                groups=ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, dim)
        self.drop_path = DropPath(drop_path)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: Tensor, global_kv: tuple[Tensor, Tensor] | None = None,
                local_kv: tuple[Tensor, Tensor] | None = None) -> BlockOutput:
        """Associate one frame with the memory.

        Args:
            x: ``[B, D, h, w]`` current frame (C5 projected to D).
            global_kv: long-term memory ``(keys, values)``, each ``[B, M, D]`` (M tokens over all
                stored frames), or None when empty.
            local_kv: the previous frame's ``(keys, values)``, each ``[B, hw, D]``, or None.

        Returns:
            :class:`BlockOutput`.
        """
        b, d, h, w = x.shape
        if d != self.dim:
            raise ValueError(f"block of width {self.dim} got {d} channels")
        tokens = x.flatten(2).transpose(1, 2)  # [B, hw, D]
        pos = sine_positions(h, w, d, device=x.device).to(x.dtype)[None]  # [1, hw, D]
        y = self.norm1(tokens)
        attn, _ = self.self_attn(y + pos, y + pos, y, need_weights=False)
        tokens = tokens + self.drop_path(attn)

        normed = self.norm2(tokens)
        keys = self.to_key(normed)  # [B, hw, D] queries of this frame = its memory keys
        memory = None
        if self.use_global and global_kv is not None:
            memory = self.global_out(multihead_attention(keys, *global_kv, self.global_heads))
        if self.use_local and local_kv is not None:
            lk, lv = local_kv
            if lk.shape != keys.shape:
                raise ValueError(f"previous-frame memory {tuple(lk.shape)} does not match the "
                                 f"current frame {tuple(keys.shape)}")
            local = local_window_attention(_to_map(keys, h, w), _to_map(lk, h, w),
                                           _to_map(lv, h, w), self.local_heads, self.window)
            local = self.local_out(local.flatten(2).transpose(1, 2))  # [B, hw, D]
            memory = local if memory is None else memory + local
        if memory is not None:
            tokens = tokens + self.drop_path(memory)

        f = self.ffn_in(self.norm3(tokens))  # [B, hw, F]
        f = _to_map(f, h, w)
        f = self.ffn_dw(self.ffn_act(self.ffn_norm(f)))  # [B, F, h, w]
        tokens = tokens + self.drop_path(self.ffn_out(f.flatten(2).transpose(1, 2)))
        return BlockOutput(out=_to_map(self.norm_out(tokens), h, w), normed=normed, keys=keys)

    def memory_values(self, normed: Tensor, id_embedding: Tensor) -> Tensor:
        """Memory values of a frame once its IDs are known.

        Args:
            normed: ``[B, hw, D]`` (:attr:`BlockOutput.normed` of that frame).
            id_embedding: ``[B, D, h, w]`` ID-bank embedding of its ID mask.

        Returns:
            ``[B, hw, D]`` ``Linear_v(normed + E)``.
        """
        e = id_embedding.flatten(2).transpose(1, 2)  # [B, hw, D]
        if e.shape != normed.shape:
            raise ValueError(f"ID embedding {tuple(e.shape)} does not match the frame "
                             f"{tuple(normed.shape)} (ID mask and image sizes differ?)")
        return self.to_value(normed + e)
