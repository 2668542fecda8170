"""Clip-consistent augmentation: one parameter draw per clip, applied to every frame.

Frames are ``uint8 [T, 3, H, W]`` tensors and masks ``bool [T, M, H, W]``; boxes are derived from
the masks after the transform, so they always agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class ClipAugConfig:
    short_sides: tuple[int, ...] = (192,)  # shortest side drawn uniformly from these (multi-scale)
    max_size: int = 640                    # cap on the longest side after resize
    hflip_prob: float = 0.5                # horizontal flip probability
    crop_prob: float = 0.0                 # probability of a random crop before resizing
    crop_min_frac: float = 0.7             # crop side as a fraction of the image side, at least


def _resize_hw(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def apply_clip_aug(images: torch.Tensor, masks: torch.Tensor, cfg: ClipAugConfig,
                   rng: np.random.Generator, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a clip with one parameter draw.

    Args:
        images: ``uint8 [T, 3, H, W]``.
        masks: ``bool [T, M, H, W]``.
    Returns:
        (images ``uint8 [T, 3, H', W']``, masks ``bool [T, M, H', W']``).
    """
    t, _, h, w = images.shape
    if train and cfg.crop_prob > 0 and rng.random() < cfg.crop_prob:
        ch = int(round(h * rng.uniform(cfg.crop_min_frac, 1.0)))
        cw = int(round(w * rng.uniform(cfg.crop_min_frac, 1.0)))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        images = images[..., y0:y0 + ch, x0:x0 + cw]
        masks = masks[..., y0:y0 + ch, x0:x0 + cw]
        h, w = ch, cw
    short = int(rng.choice(cfg.short_sides)) if train else int(cfg.short_sides[-1])
    nh, nw = _resize_hw(h, w, short, cfg.max_size)
    if (nh, nw) != (h, w):
        images = F.interpolate(images.float(), size=(nh, nw), mode="bilinear",
                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
        if masks.numel():
            masks = F.interpolate(masks.float(), size=(nh, nw), mode="bilinear",
                                  align_corners=False) >= 0.5
        else:
            masks = torch.zeros((t, masks.shape[1], nh, nw), dtype=torch.bool)
    if train and cfg.hflip_prob > 0 and rng.random() < cfg.hflip_prob:
        images = images.flip(-1)
        masks = masks.flip(-1)
    return images, masks


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``bool [M, H, W]`` -> ``float [M, 4]`` (x1, y1, x2, y2), +1 on the far side; zeros if empty."""
    m, h, w = masks.shape
    boxes = torch.zeros((m, 4), dtype=torch.float32)
    if m == 0:
        return boxes
    rows = masks.any(dim=2)  # [M, H]
    cols = masks.any(dim=1)  # [M, W]
    nonempty = rows.any(dim=1)
    ar_h = torch.arange(h)
    ar_w = torch.arange(w)
    big = torch.tensor(10 ** 9)
    y1 = torch.where(rows, ar_h, big).min(dim=1).values
    y2 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x1 = torch.where(cols, ar_w, big).min(dim=1).values
    x2 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    boxes[nonempty] = torch.stack([x1, y1, x2, y2], dim=1)[nonempty].float()
    return boxes
