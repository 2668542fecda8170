"""Clip-consistent augmentation: one parameter draw per clip, applied to every frame.

Frames are ``uint8 [T, 3, H, W]`` tensors and masks ``bool [T, M, H, W]``; boxes are derived from
the masks after the transform, so they always agree.

Pseudo videos (:func:`pseudo_video`): a clip made from one annotated frame, every later frame a
random affine warp of it (rotation, scale, shift) -- the "3-frame pseudo videos with +-30 deg
rotation" of Propose-Reduce's main training stage (after STM).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tubelet.errors import InputError


@dataclass
class ClipAugConfig:
    short_sides: tuple[int, ...] = (192,)  # shortest side drawn uniformly from these (multi-scale)
    max_size: int = 640                    # cap on the longest side after resize
    hflip_prob: float = 0.5                # horizontal flip probability
    crop_prob: float = 0.0                 # probability of a random crop before resizing
    crop_min_frac: float = 0.7             # crop side as a fraction of the image side, at least
    # zoom-out (SSD's "expand" at a constant size): the resized clip shrunk by a factor drawn in
    # [zoom_out_min, 1] and placed at a random position on a canvas of its own size, filled with
    # ``zoom_out_fill`` (ImageNet mean colour), so objects also appear small and off-centre
    zoom_out_prob: float = 0.0
    zoom_out_min: float = 0.5
    zoom_out_fill: tuple[int, int, int] = (124, 116, 104)
    # photometric: brightness, contrast and saturation factors each drawn in [1 - x, 1 + x]
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        # InputError: a YAML / key=value slip is reported by the CLI in one line
        for name, lo, hi in (("hflip_prob", 0, 1), ("crop_prob", 0, 1), ("zoom_out_prob", 0, 1),
                             ("crop_min_frac", 1e-6, 1), ("zoom_out_min", 1e-6, 1),
                             ("color_jitter", 0, 0.999)):
            if not lo <= getattr(self, name) <= hi:
                raise InputError(f"must be in [{lo}, {hi}], got {getattr(self, name)}",
                                 None, None, f"data.clip.aug.{name}")
        fill = list(self.zoom_out_fill)
        if len(fill) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in fill):
            raise InputError(f"must be 3 integers in [0, 255] (R, G, B), got {fill}",
                             None, None, "data.clip.aug.zoom_out_fill")


@dataclass
class PseudoVideoConfig:
    """Pseudo videos from single frames (``ClipConfig.pseudo``); off by default."""
    prob: float = 0.0          # probability that a training clip is a pseudo video (1 = a stage
    #                            made only of them: Propose-Reduce's main stage)
    max_rotation: float = 30.0 # rotation drawn in [-this, this] degrees (paper: +-30)
    max_scale: float = 0.1     # scale drawn in [1 - this, 1 + this]
    max_shift: float = 0.1     # shift drawn in [-this, this] x the image side, per axis


def affine_warp(images: torch.Tensor, masks: torch.Tensor, angle: float, scale: float,
                shift: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp one frame by ``p' = s R(angle) (p - c) + c + shift`` (pixel centres, x right, y down,
    c the image centre ``((W-1)/2, (H-1)/2)``; a positive angle turns x towards y, i.e. clockwise on
    screen). Pixels whose source falls outside the frame become 0 / background.

    Args:
        images: ``uint8 [3, H, W]`` (bilinear). masks: ``bool [M, H, W]`` (nearest).
        angle: degrees; scale: > 0; shift: (dx, dy) in pixels.
    Returns:
        (``uint8 [3, H, W]``, ``bool [M, H, W]``).
    """
    _, h, w = images.shape
    a = np.deg2rad(angle)
    cos, sin = np.cos(a) / scale, np.sin(a) / scale  # inverse map: R(-angle) / s
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    u = xs - (w - 1) / 2 - shift[0]
    v = ys - (h - 1) / 2 - shift[1]
    src_x = cos * u + sin * v + (w - 1) / 2  # [H, W] source pixel of each output pixel
    src_y = -sin * u + cos * v + (h - 1) / 2
    # normalised sampling grid [1, H, W, 2] (align_corners=False)
    grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], -1)[None].float()
    out = F.grid_sample(images[None].float(), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    if masks.shape[0] == 0:
        return out, masks.clone()
    m = F.grid_sample(masks[None].float(), grid, mode="nearest", padding_mode="zeros",
                      align_corners=False)[0] > 0.5
    return out, m


def pseudo_video(image: torch.Tensor, masks: torch.Tensor, num_frames: int,
                 cfg: PseudoVideoConfig, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``num_frames`` clip from one frame: frame 0 is the frame itself, each later frame an
    independent random :func:`affine_warp` of it (one draw of angle, scale, shift per frame).

    Args:
        image: ``uint8 [3, H, W]``; masks: ``bool [M, H, W]``.
    Returns:
        (``uint8 [T, 3, H, W]``, ``bool [T, M, H, W]``).
    """
    _, h, w = image.shape
    imgs, ms = [image], [masks]
    for _ in range(num_frames - 1):
        angle = float(rng.uniform(-cfg.max_rotation, cfg.max_rotation))
        scale = float(rng.uniform(1 - cfg.max_scale, 1 + cfg.max_scale))
        shift = (float(rng.uniform(-cfg.max_shift, cfg.max_shift)) * w,
                 float(rng.uniform(-cfg.max_shift, cfg.max_shift)) * h)
        im, m = affine_warp(image, masks, angle, scale, shift)
        imgs.append(im)
        ms.append(m)
    return torch.stack(imgs), torch.stack(ms)


def _resize_hw(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def resize_clip(images: torch.Tensor, masks: torch.Tensor,
                size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear resize of a clip to ``size`` (h, w): images rounded back to uint8, masks kept
    where the interpolated value is >= 0.5.

    Args:
        images: ``uint8 [T, 3, H, W]``; masks: ``bool [T, M, H, W]`` (M may be 0).
    Returns:
        (``uint8 [T, 3, h, w]``, ``bool [T, M, h, w]``).
    """
    images = F.interpolate(images.float(), size=size, mode="bilinear",
                           align_corners=False).round().clamp(0, 255).to(torch.uint8)
    if masks.numel():
        masks = F.interpolate(masks.float(), size=size, mode="bilinear",
                              align_corners=False) >= 0.5
    else:
        masks = torch.zeros((*masks.shape[:2], *size), dtype=torch.bool)
    return images, masks


def zoom_out(images: torch.Tensor, masks: torch.Tensor, size: tuple[int, int], y0: int, x0: int,
             fill: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Shrink a clip to ``size`` (h, w) and paste it at (y0, x0) on a ``fill`` canvas of its own
    size.

    Args:
        images: ``uint8 [T, 3, H, W]``; masks: ``bool [T, M, H, W]``; ``h <= H``, ``w <= W``;
        (y0, x0): top-left corner, ``0 <= y0 <= H - h``, ``0 <= x0 <= W - w``.
    Returns:
        (``uint8 [T, 3, H, W]``, ``bool [T, M, H, W]``).
    """
    t, _, h, w = images.shape
    zh, zw = size
    out = torch.tensor(fill, dtype=torch.uint8).view(1, 3, 1, 1).repeat(t, 1, h, w)
    m = torch.zeros_like(masks)
    small, small_m = resize_clip(images, masks, size)
    out[..., y0:y0 + zh, x0:x0 + zw] = small
    m[..., y0:y0 + zh, x0:x0 + zw] = small_m
    return out, m


def color_jitter(images: torch.Tensor, brightness: float, contrast: float,
                 saturation: float) -> torch.Tensor:
    """``uint8 [T, 3, H, W]`` -> brightness (x b), then contrast (about each frame's mean grey),
    then saturation (about each pixel's grey, ITU-R 601 weights) scaled; rounded, clipped."""
    x = images.float() * brightness
    grey_w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    mean = (x * grey_w).sum(1, keepdim=True).mean((2, 3), keepdim=True)  # [T, 1, 1, 1]
    x = (x - mean) * contrast + mean
    grey = (x * grey_w).sum(1, keepdim=True)  # [T, 1, H, W]
    x = (x - grey) * saturation + grey
    return x.round().clamp(0, 255).to(torch.uint8)


def apply_clip_aug(images: torch.Tensor, masks: torch.Tensor, cfg: ClipAugConfig,
                   rng: np.random.Generator, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a clip with one parameter draw.

    Args:
        images: ``uint8 [T, 3, H, W]``.
        masks: ``bool [T, M, H, W]``.
    Returns:
        (images ``uint8 [T, 3, H', W']``, masks ``bool [T, M, H', W']``).
    """
    _, _, h, w = images.shape
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
        images, masks = resize_clip(images, masks, (nh, nw))
    if train and cfg.zoom_out_prob > 0 and rng.random() < cfg.zoom_out_prob:
        s = float(rng.uniform(cfg.zoom_out_min, 1.0))
        zh, zw = max(1, int(round(nh * s))), max(1, int(round(nw * s)))
        images, masks = zoom_out(images, masks, (zh, zw), int(rng.integers(0, nh - zh + 1)),
                                 int(rng.integers(0, nw - zw + 1)), cfg.zoom_out_fill)
    if train and cfg.color_jitter > 0:
        b, c, sat = (float(v) for v in rng.uniform(1 - cfg.color_jitter, 1 + cfg.color_jitter, 3))
        images = color_jitter(images, b, c, sat)
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
