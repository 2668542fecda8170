"""Contrastive instance embeddings (IDOL-style; YouTube-VIS 2022 1st place, Sec. 3.2).

The original decodes contrastive embeddings from DETR query embeddings with a 3-layer MLP
(256-256-256). On a dense detector the per-location head features (the CondInst classification
tower output at a location) play the role of the query embeddings.

Loss for one anchor embedding v (a key-frame embedding of an object) with positives k+ (the same
object's embeddings on the reference frame) and negatives k- (other embeddings on that frame),
Eq. 2 of the paper, raw dot products::

    L_embed(v) = log(1 + sum_{k+} sum_{k-} exp(v . k- - v . k+))

averaged over anchors that have at least one positive. Auxiliary loss (released code): for every
pair (v, k), ``(cos(v, k) - label)^2`` with label 1 for positives and 0 for negatives, negatives
subsampled to at most ``max_neg_per_pos`` (10) per positive; averaged per anchor, then over anchors.
Loss weights in the original: contrastive 2, auxiliary 3 (REFERENCE_NOTES §4).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EmbedHead(nn.Module):
    """MLP ``in -> width -> ... -> out`` with ReLU between layers (none after the last).

    Args:
        in_channels: feature width F of the input.
        width: hidden width (256 in the paper).
        out_channels: embedding width D (256 in the paper).
        num_layers: linear layers (3 in the paper).
    """

    def __init__(self, in_channels: int = 256, width: int = 256, out_channels: int = 256,
                 num_layers: int = 3):
        super().__init__()
        dims = [in_channels] + [width] * (num_layers - 1) + [out_channels]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        """``[..., F]`` -> ``[..., D]``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def _pad(rows: Sequence[Tensor], dim: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """List of ``[K_i, D]`` -> (``[A, K_max, D]`` zero-padded, ``[A, K_max]`` bool valid)."""
    k_max = max([r.shape[0] for r in rows], default=0)
    out = like.new_zeros(len(rows), k_max, dim)
    valid = torch.zeros(len(rows), k_max, dtype=torch.bool, device=like.device)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
        valid[i, : r.shape[0]] = True
    return out, valid


def contrastive_loss(anchors: Tensor, positives: Sequence[Tensor],
                     negatives: Sequence[Tensor]) -> Tensor:
    """Eq. 2 of the paper, mean over anchors with at least one positive.

    Args:
        anchors: ``[A, D]`` key-frame embeddings v (one row per anchor; an object may contribute
            several anchors, e.g. several positive locations).
        positives: A tensors ``[P_i, D]``: the anchor's object on the reference frame.
        negatives: A tensors ``[Q_i, D]``: other embeddings on the reference frame.

    Returns:
        scalar; 0 (connected to ``anchors``) when no anchor has a positive.
    """
    if not (len(positives) == len(negatives) == anchors.shape[0]):
        raise ValueError("anchors, positives and negatives must have the same length A")
    d = anchors.shape[1]
    pos, pos_ok = _pad(positives, d, anchors)  # [A, P, D], [A, P]
    neg, neg_ok = _pad(negatives, d, anchors)  # [A, Q, D], [A, Q]
    has_pos = pos_ok.any(1)
    if not bool(has_pos.any()):
        return anchors.sum() * 0
    s_pos = torch.einsum("ad,apd->ap", anchors, pos)  # v . k+
    s_neg = torch.einsum("ad,aqd->aq", anchors, neg)  # v . k-
    diff = s_neg[:, None, :] - s_pos[:, :, None]  # [A, P, Q]: v.k- - v.k+
    pair_ok = pos_ok[:, :, None] & neg_ok[:, None, :]
    diff = diff.masked_fill(~pair_ok, float("-inf")).flatten(1)  # [A, P*Q]
    # log(1 + sum exp(x)) = logsumexp([0, x...]); stable for large dot products
    zero = diff.new_zeros(diff.shape[0], 1)
    per_anchor = torch.logsumexp(torch.cat([zero, diff], dim=1), dim=1)  # [A]
    return per_anchor[has_pos].mean()


def auxiliary_cosine_loss(anchors: Tensor, positives: Sequence[Tensor],
                          negatives: Sequence[Tensor], max_neg_per_pos: int | None = 10,
                          generator: torch.Generator | None = None) -> Tensor:
    """Mean over anchors (with a positive) of the per-anchor mean of ``(cos(v, k) - label)^2``.

    Args:
        anchors, positives, negatives: as in :func:`contrastive_loss`.
        max_neg_per_pos: keep at most this many negatives per positive (random subset,
            ``generator`` for reproducibility); None keeps all.

    Returns:
        scalar; 0 (connected to ``anchors``) when no anchor has a positive.
    """
    if not (len(positives) == len(negatives) == anchors.shape[0]):
        raise ValueError("anchors, positives and negatives must have the same length A")
    losses = []
    for v, kp, kn in zip(anchors, positives, negatives):
        if kp.shape[0] == 0:
            continue
        if max_neg_per_pos is not None and kn.shape[0] > max_neg_per_pos * kp.shape[0]:
            keep = torch.randperm(kn.shape[0], generator=generator)[: max_neg_per_pos * kp.shape[0]]
            kn = kn[keep.to(kn.device)]
        keys = torch.cat([kp, kn])  # [P + Q', D]
        label = torch.cat([kp.new_ones(kp.shape[0]), kn.new_zeros(kn.shape[0])])
        cos = F.cosine_similarity(v[None, :], keys, dim=1)
        losses.append(((cos - label) ** 2).mean())
    if not losses:
        return anchors.sum() * 0
    return torch.stack(losses).mean()
