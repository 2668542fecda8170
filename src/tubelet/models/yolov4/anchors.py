"""Anchor priors by k-means on box sizes with the IoU distance (YOLOv2 §"Dimension Clusters").

The distance between two (w, h) sizes is ``1 - IoU`` of the two boxes placed at a common corner
(so only shape and scale matter, not position). YOLOv4+1seg computes the anchors on the training
set "in advance by Kmeans" and splits them over the 4 pyramid levels (paper §3.2: 16 anchors,
4 per level; sorted by area, the smallest 4 go to the stride-4 level).

Anchors are in pixels of the network input (the letterboxed frame): compute them on boxes already
mapped by the letterbox, so the priors match what the head sees.
"""
from __future__ import annotations

import torch
from torch import Tensor


def wh_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of corner-aligned boxes given only their sizes.

    Args:
        a: ``[N, 2]`` (w, h); b: ``[K, 2]`` (w, h), positive.

    Returns:
        ``[N, K]`` ``min(w) min(h) / (w_a h_a + w_b h_b - min(w) min(h))``.
    """
    inter = torch.minimum(a[:, None, 0], b[None, :, 0]) * torch.minimum(a[:, None, 1], b[None, :, 1])
    area_a = a[:, 0] * a[:, 1]
    area_b = b[:, 0] * b[:, 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def kmeans_anchors(wh: Tensor, k: int, seed: int = 0, iters: int = 300,
                   update: str = "mean") -> Tensor:
    """k anchor sizes by k-means with distance ``1 - IoU``, sorted by increasing area.

    Initialisation is k-means++ (each next centre drawn with probability proportional to its
    squared distance to the nearest chosen centre) from a ``torch.Generator`` seeded with ``seed``,
    so the result is deterministic. Lloyd iterations assign each box to its highest-IoU centre
    and move each centre to its cluster's mean (or median) size; a centre left without boxes stays
    where it was. Stops when assignments no longer change or after ``iters`` iterations.

    Args:
        wh: ``[N, 2]`` box (w, h) in pixels, positive; N >= k.
        k: number of anchors.
        seed: seed of the initialisation.
        iters: maximum Lloyd iterations.
        update: ``"mean"`` or ``"median"`` centre update.

    Returns:
        ``[k, 2]`` (w, h) float, sorted by area (w h) ascending.
    """
    wh = wh.reshape(-1, 2).double()
    if (wh <= 0).any():
        raise ValueError("box sizes must be positive")
    if wh.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} boxes, got {wh.shape[0]}")
    if update not in ("mean", "median"):
        raise ValueError(f"update must be 'mean' or 'median', got {update!r}")
    gen = torch.Generator().manual_seed(seed)
    centres = [wh[torch.randint(wh.shape[0], (1,), generator=gen).item()]]
    for _ in range(1, k):
        d = 1 - wh_iou(wh, torch.stack(centres)).max(dim=1).values  # [N] distance to nearest
        p = d.clamp(min=0) ** 2
        if p.sum() <= 0:  # every box coincides with a centre: fall back to uniform draws
            p = torch.ones_like(p)
        centres.append(wh[torch.multinomial(p / p.sum(), 1, generator=gen).item()])
    c = torch.stack(centres)  # [k, 2]
    assign = None
    for _ in range(iters):
        new = wh_iou(wh, c).argmax(dim=1)  # [N] nearest centre = highest IoU
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = wh[assign == j]
            if members.shape[0]:
                c[j] = members.mean(0) if update == "mean" else members.median(0).values
    order = (c[:, 0] * c[:, 1]).argsort()
    return c[order].float()


def split_anchors(anchors: Tensor, levels: int) -> Tensor:
    """``[K, 2]`` anchors sorted by area -> ``[levels, K / levels, 2]``, smallest on level 0
    (the finest, stride 4)."""
    if anchors.shape[0] % levels:
        raise ValueError(f"{anchors.shape[0]} anchors do not split evenly over {levels} levels")
    order = (anchors[:, 0] * anchors[:, 1]).argsort()
    return anchors[order].reshape(levels, -1, 2)


def level_anchors(wh: Tensor, per_level: int = 4, levels: int = 4, seed: int = 0) -> Tensor:
    """k-means anchors for a detector: ``per_level * levels`` clusters split by area into
    ``[levels, per_level, 2]`` (paper: 16 anchors over 4 levels)."""
    return split_anchors(kmeans_anchors(wh, per_level * levels, seed=seed), levels)


def default_anchors(strides: tuple[int, ...] = (4, 8, 16, 32), per_level: int = 4) -> Tensor:
    """Placeholder priors ``[levels, per_level, 2]`` used until k-means has run on a training set:
    per level, squares and 1:2 / 2:1 boxes of about 2 and 4 strides (areas rise with the level).

    For per_level = 4: sizes s (2, 2), (2.8, 1.4), (1.4, 2.8), (4, 4) in units of the stride s.
    """
    base = [(2.0, 2.0), (2.0 * 2 ** 0.5, 2 ** 0.5), (2 ** 0.5, 2.0 * 2 ** 0.5), (4.0, 4.0),
            (4.0 * 2 ** 0.5, 2.0 * 2 ** 0.5), (2.0 * 2 ** 0.5, 4.0 * 2 ** 0.5)]
    if per_level > len(base):
        raise ValueError(f"default anchors exist for at most {len(base)} per level")
    shapes = torch.tensor(base[:per_level])
    return torch.stack([shapes * s for s in strides])  # [levels, per_level, 2]
