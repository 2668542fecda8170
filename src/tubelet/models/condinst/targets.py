"""FCOS training targets (Tian et al. 2019, with the centre-sampling improvement).

Locations: the pixel ``(i, j)`` of a level with stride s sits at image point
``(x, y) = (j * s + s // 2, i * s + s // 2)``. Every level's locations are concatenated coarse
after fine into one list of L locations (level order P3, P4, ...).

A location is a positive for ground-truth box g (x1, y1, x2, y2) when
  1. it lies strictly inside g's centre region: the box ``[cx - r s, cy - r s, cx + r s, cy + r s]``
     (r = ``center_radius`` = 1.5, s = the location's stride, (cx, cy) = g's centre) clipped to g;
     with ``center_radius=None`` the whole box g is used (plain FCOS);
  2. ``lo_l <= max(l, t, r, b) <= hi_l``, where ``(l, t, r, b)`` are its distances to g's sides and
     ``[lo_l, hi_l]`` the level's size range: boundaries (64, 128, 256, 512) give
     [0, 64], [64, 128], [128, 256], [256, 512], [512, inf] for P3-P7.
A location positive for several boxes takes the one with the smallest area (ties: lowest index).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

INF = float("inf")


@dataclass
class FCOSTargets:
    """Per-location targets of one image (L locations over all levels).

    Attributes:
        labels: ``[L]`` long, 0-based class of the assigned box, -1 for background.
        gt_index: ``[L]`` long, index of the assigned ground-truth box, -1 for background.
        box_targets: ``[L, 4]`` float (l, t, r, b) pixel distances to the assigned box (0 for bg).
        centerness: ``[L]`` float centerness target ``sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))``
            (0 for background).
    """
    labels: Tensor
    gt_index: Tensor
    box_targets: Tensor
    centerness: Tensor

    @property
    def positive(self) -> Tensor:
        """``[L]`` bool foreground mask."""
        return self.labels >= 0


def level_locations(height: int, width: int, stride: int, device=None) -> Tensor:
    """``[height * width, 2]`` float (x, y) image coordinates of a level's pixels, row-major."""
    xs = torch.arange(width, device=device, dtype=torch.float32) * stride + stride // 2
    ys = torch.arange(height, device=device, dtype=torch.float32) * stride + stride // 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def level_size_ranges(boundaries: tuple[float, ...], num_levels: int) -> list[tuple[float, float]]:
    """``[(lo_l, hi_l)]`` per level from ``num_levels - 1`` increasing boundaries."""
    if len(boundaries) != num_levels - 1:
        raise ValueError(f"{num_levels} levels need {num_levels - 1} size boundaries, "
                         f"got {len(boundaries)}")
    edges = [0.0, *[float(b) for b in boundaries], INF]
    return [(edges[i], edges[i + 1]) for i in range(num_levels)]


def centerness_target(ltrb: Tensor) -> Tensor:
    """``[..., 4]`` positive (l, t, r, b) -> ``[...]`` FCOS centerness (Eq. 3 of FCOS)."""
    lr, tb = ltrb[..., [0, 2]], ltrb[..., [1, 3]]
    ratio = (lr.min(-1).values / lr.max(-1).values.clamp(min=1e-12)) * \
            (tb.min(-1).values / tb.max(-1).values.clamp(min=1e-12))
    return ratio.clamp(min=0).sqrt()


def fcos_targets(locations: Tensor, strides: Tensor, ranges: Tensor, boxes: Tensor, labels: Tensor,
                 center_radius: float | None = 1.5) -> FCOSTargets:
    """Assign every location to at most one ground-truth box.

    Args:
        locations: ``[L, 2]`` (x, y) of all levels' locations.
        strides: ``[L]`` stride of each location's level.
        ranges: ``[L, 2]`` (lo, hi) size range of each location's level.
        boxes: ``[M, 4]`` ground truth (x1, y1, x2, y2) pixels.
        labels: ``[M]`` 0-based classes.
        center_radius: centre-sampling radius in strides (1.5), or None for the whole box.

    Returns:
        :class:`FCOSTargets` with L entries.
    """
    n_loc, device = locations.shape[0], locations.device
    if boxes.shape[0] == 0:
        return FCOSTargets(torch.full((n_loc,), -1, dtype=torch.long, device=device),
                           torch.full((n_loc,), -1, dtype=torch.long, device=device),
                           torch.zeros(n_loc, 4, device=device), torch.zeros(n_loc, device=device))
    boxes = boxes.to(locations.dtype)
    x, y = locations[:, 0:1], locations[:, 1:2]  # [L, 1]
    ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y],
                       dim=2)  # [L, M, 4]
    if center_radius is None:
        inside = ltrb.min(dim=2).values > 0
    else:
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2  # [M]
        r = center_radius * strides.to(locations.dtype)[:, None]  # [L, 1]
        sub = torch.stack([torch.maximum(cx - r, boxes[:, 0]), torch.maximum(cy - r, boxes[:, 1]),
                           torch.minimum(cx + r, boxes[:, 2]), torch.minimum(cy + r, boxes[:, 3])],
                          dim=2)  # [L, M, 4] centre region clipped to the box
        inside = torch.stack([x - sub[..., 0], y - sub[..., 1], sub[..., 2] - x, sub[..., 3] - y],
                             dim=2).min(dim=2).values > 0
    reach = ltrb.max(dim=2).values  # [L, M]
    fits = (reach >= ranges[:, 0:1]) & (reach <= ranges[:, 1:2])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # [M]
    cost = torch.where(inside & fits, area[None, :].expand(n_loc, -1),
                       torch.full_like(reach, INF))
    best_cost, gt_index = cost.min(dim=1)  # min returns the first index among ties
    positive = torch.isfinite(best_cost)
    gt_index = torch.where(positive, gt_index, torch.full_like(gt_index, -1))
    safe = gt_index.clamp(min=0)
    box_targets = ltrb[torch.arange(n_loc, device=device), safe]  # [L, 4]
    box_targets = torch.where(positive[:, None], box_targets, torch.zeros_like(box_targets))
    ctr = torch.where(positive, centerness_target(box_targets.clamp(min=1e-6)),
                      torch.zeros(n_loc, device=device))
    cls = torch.where(positive, labels.to(device).long()[safe], torch.full_like(gt_index, -1))
    return FCOSTargets(cls, gt_index, box_targets, ctr)


def level_tables(shapes, strides, sizes_of_interest, size_ranges, device) -> tuple:
    """Per-location constants of pyramid levels of ``(h, w)`` ``shapes``: locations ``[L, 2]``,
    strides ``[L]``, level index ``[L]`` (long), size of interest ``[L]``, size ranges ``[L, 2]``
    and each level's slice of the L axis."""
    locs, strd, levels, soi, ranges, slices = [], [], [], [], [], []
    start = 0
    for i, ((h, w), s) in enumerate(zip(shapes, strides)):
        locs.append(level_locations(h, w, s, device))
        n = h * w
        strd.append(torch.full((n,), float(s), device=device))
        levels.append(torch.full((n,), i, dtype=torch.long, device=device))
        soi.append(torch.full((n,), sizes_of_interest[i], device=device))
        ranges.append(torch.tensor(size_ranges[i], device=device).expand(n, 2))
        slices.append(slice(start, start + n))
        start += n
    return (torch.cat(locs), torch.cat(strd), torch.cat(levels), torch.cat(soi),
            torch.cat(ranges), slices)
