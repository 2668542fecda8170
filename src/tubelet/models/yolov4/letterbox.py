"""Letterbox: resize keeping the aspect ratio, pad to the network's (square) input, and back.

YOLO feeds a fixed square (416 x 416 in YOLOv4+1seg, notes §2): a frame of size (h, w) is scaled
by ``r = min(S_h / h, S_w / w)`` to (round(h r), round(w r)), centred and padded with grey. The
per-axis scales ``new / old`` are kept exactly so boxes map back without drift from rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Letterbox:
    """The mapping of one frame into the network input.

    Attributes:
        orig_size: (h, w) of the frame.
        new_size: (h', w') of the resized frame inside the input.
        out_size: (S_h, S_w) of the network input.
        pad: (top, left) padding in pixels.
    """
    orig_size: tuple[int, int]
    new_size: tuple[int, int]
    out_size: tuple[int, int]
    pad: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(s_y, s_x) = new / orig per axis."""
        return self.new_size[0] / self.orig_size[0], self.new_size[1] / self.orig_size[1]


def letterbox_params(orig_size: tuple[int, int], out_size: int | tuple[int, int]) -> Letterbox:
    """The :class:`Letterbox` of a (h, w) frame into a square ``out_size`` or an (S_h, S_w) input."""
    h, w = orig_size
    sh, sw = (out_size, out_size) if isinstance(out_size, int) else out_size
    r = min(sh / h, sw / w)
    nh, nw = min(sh, max(1, round(h * r))), min(sw, max(1, round(w * r)))
    return Letterbox((h, w), (nh, nw), (sh, sw), ((sh - nh) // 2, (sw - nw) // 2))


def letterbox_images(images: Tensor, lb: Letterbox, pad_value: float = 0.5) -> Tensor:
    """``[B, 3, h, w]`` float images (e.g. RGB in [0, 1]) -> ``[B, 3, S_h, S_w]``; bilinear
    resize, grey padding (Darknet pads with 0.5)."""
    x = images
    if tuple(x.shape[-2:]) != lb.new_size:
        x = F.interpolate(x, size=lb.new_size, mode="bilinear", align_corners=False)
    top, left = lb.pad
    out = x.new_full((*x.shape[:-2], *lb.out_size), pad_value)
    out[..., top:top + lb.new_size[0], left:left + lb.new_size[1]] = x
    return out


def letterbox_boxes(boxes: Tensor, lb: Letterbox) -> Tensor:
    """``[N, 4]`` (x1, y1, x2, y2) in the frame -> the network input."""
    sy, sx = lb.scale
    top, left = lb.pad
    return boxes * boxes.new_tensor([sx, sy, sx, sy]) + boxes.new_tensor([left, top, left, top])


def unletterbox_boxes(boxes: Tensor, lb: Letterbox, clip: bool = True) -> Tensor:
    """``[N, 4]`` (x1, y1, x2, y2) in the network input -> the frame (clipped to it by default)."""
    sy, sx = lb.scale
    top, left = lb.pad
    out = (boxes - boxes.new_tensor([left, top, left, top])) / boxes.new_tensor([sx, sy, sx, sy])
    if clip:
        h, w = lb.orig_size
        out = torch.stack([out[:, 0].clamp(0, w), out[:, 1].clamp(0, h),
                           out[:, 2].clamp(0, w), out[:, 3].clamp(0, h)], dim=1)
    return out


def letterbox_masks(masks: Tensor, lb: Letterbox) -> Tensor:
    """``[N, h, w]`` bool (or float) masks in the frame -> ``[N, S_h, S_w]`` (nearest resize, zero
    padding)."""
    x = masks[:, None].float()
    if tuple(x.shape[-2:]) != lb.new_size:
        x = F.interpolate(x, size=lb.new_size, mode="nearest-exact")
    top, left = lb.pad
    out = x.new_zeros(x.shape[0], 1, *lb.out_size)
    out[..., top:top + lb.new_size[0], left:left + lb.new_size[1]] = x
    out = out[:, 0]
    return out > 0.5 if masks.dtype == torch.bool else out


def unletterbox_masks(masks: Tensor, lb: Letterbox) -> Tensor:
    """``[N, S_h, S_w]`` masks in the network input -> ``[N, h, w]`` in the frame: crop the
    padding, resize (nearest for bool masks, bilinear for probabilities)."""
    top, left = lb.pad
    x = masks[:, None, top:top + lb.new_size[0], left:left + lb.new_size[1]].float()
    if lb.new_size != lb.orig_size:
        mode = "nearest-exact" if masks.dtype == torch.bool else "bilinear"
        kw = {} if mode == "nearest-exact" else {"align_corners": False}
        x = F.interpolate(x, size=lb.orig_size, mode=mode, **kw)
    x = x[:, 0]
    return x > 0.5 if masks.dtype == torch.bool else x
