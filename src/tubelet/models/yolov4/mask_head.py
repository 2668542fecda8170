"""Adaptive feature pooling and the mask subnet (YOLOv4+1seg §3.2, after PANet §3.2).

Paper: "we have adopted the same strategy used in PANet, namely Adaptive Feature Pooling, in
which using the proposals we cut and resize the regions of interest on the embeddings produced by
the four levels of the pyramid. These new features are fed to a different convolutional subnet
which learn instance segmentation." PANet pools every proposal from *all* levels and fuses the
grids with "a fusion operation (element-wise max or sum)"; max is the default here, sum an option.
PANet puts one per-level layer before the fusion; here that is the per-level embedding conv that
produces the maps being pooled (RoIAlign is linear, so a per-level 1x1 conv before it equals one
after it).

The subnet is Mask R-CNN's: ``num_convs`` 3x3 convs, a 2x2 stride-2 deconvolution, a 1x1
predictor, so a ``P x P`` pooled grid gives a ``2P x 2P`` class-agnostic mask (14 -> 28).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

FUSIONS = ("max", "sum")


def adaptive_feature_pool(features: Sequence[Tensor], strides: Sequence[int], boxes: Tensor,
                          batch_index: Tensor, output_size: int = 14, sampling_ratio: int = 2,
                          fusion: str = "max") -> Tensor:
    """RoIAlign every box on every level, then fuse the levels element-wise.

    Args:
        features: L maps ``[B, E, H_l, W_l]`` (same E on every level).
        strides: the L strides.
        boxes: ``[K, 4]`` (x1, y1, x2, y2) in pixels of the network input.
        batch_index: ``[K]`` long image of each box.
        output_size: P, the pooled grid side.
        sampling_ratio: bilinear samples per bin side (RoIAlign).
        fusion: ``"max"`` or ``"sum"`` over levels.

    Returns:
        ``[K, E, P, P]``.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion '{fusion}' (known: {', '.join(FUSIONS)})")
    rois = torch.cat([batch_index[:, None].to(boxes.dtype), boxes], dim=1)  # [K, 5]
    pooled = [roi_align(f, rois.to(f.dtype), output_size, spatial_scale=1.0 / s,
                        sampling_ratio=sampling_ratio, aligned=True)
              for f, s in zip(features, strides)]  # L x [K, E, P, P]
    out = pooled[0]
    for p in pooled[1:]:
        out = torch.maximum(out, p) if fusion == "max" else out + p
    return out


class MaskSubnet(nn.Module):
    """Pooled features ``[K, E, P, P]`` -> mask logits ``[K, 1, 2P, 2P]``.

    Args:
        channels: E, the width of the pooled features and of the convs (256 in Mask R-CNN).
        num_convs: 3x3 convs before the deconvolution (4 in Mask R-CNN).
    """

    def __init__(self, channels: int = 256, num_convs: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.predictor = nn.Conv2d(channels, 1, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.predictor(F.relu(self.deconv(self.convs(pooled))))


def roi_mask_targets(masks: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Ground-truth masks cropped to boxes and resampled to the mask grid (Mask R-CNN targets).

    Args:
        masks: ``[K, H, W]`` bool/float, the matched ground-truth mask of each box.
        boxes: ``[K, 4]`` (x1, y1, x2, y2) pixels in the masks' frame.
        size: M, the mask side.

    Returns:
        ``[K, M, M]`` float in {0, 1} (bilinear RoIAlign, then >= 0.5).
    """
    k = masks.shape[0]
    rois = torch.cat([torch.arange(k, device=boxes.device, dtype=boxes.dtype)[:, None], boxes], 1)
    soft = roi_align(masks[:, None].float(), rois.float(), size, 1.0, sampling_ratio=2, aligned=True)
    return (soft[:, 0] >= 0.5).float()


def paste_masks_in_boxes(probs: Tensor, boxes: Tensor, size: tuple[int, int],
                         threshold: float | None = 0.5) -> Tensor:
    """Paste ``M x M`` box-relative masks into a full frame.

    The mask grid covers the box exactly: output pixel centre (j + 0.5) samples the mask at
    ``(j + 0.5 - x1) / (x2 - x1) * M`` (bilinear, align_corners=False; zero outside the box).

    Args:
        probs: ``[N, M, M]`` mask probabilities.
        boxes: ``[N, 4]`` (x1, y1, x2, y2) in pixels of the output frame.
        size: (H, W) of the output frame.
        threshold: binarise at this probability (None: return probabilities).

    Returns:
        ``[N, H, W]`` bool (or float when ``threshold`` is None).
    """
    h, w = size
    out = torch.zeros(probs.shape[0], h, w, device=probs.device,
                      dtype=torch.bool if threshold is not None else torch.float32)
    for i in range(probs.shape[0]):
        x1, y1, x2, y2 = boxes[i].tolist()
        c0, r0 = max(0, int(x1)), max(0, int(y1))  # pixel range touched by the box
        c1, r1 = min(w, int(x2) + 1), min(h, int(y2) + 1)
        if c1 <= c0 or r1 <= r0 or x2 <= x1 or y2 <= y1:
            continue
        xs = (torch.arange(c0, c1, device=probs.device) + 0.5 - x1) / (x2 - x1) * 2 - 1
        ys = (torch.arange(r0, r1, device=probs.device) + 0.5 - y1) / (y2 - y1) * 2 - 1
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)  # [h_i, w_i, 2] (x, y)
        crop = F.grid_sample(probs[i][None, None].float(), grid[None], mode="bilinear",
                             padding_mode="zeros", align_corners=False)[0, 0]
        out[i, r0:r1, c0:c1] = crop > threshold if threshold is not None else crop
    return out


def mask_centroids(probs: Tensor, boxes: Tensor) -> Tensor:
    """Probability-weighted centroid of each box-relative mask, in pixels.

    Args:
        probs: ``[N, M, M]`` mask probabilities; boxes: ``[N, 4]`` (x1, y1, x2, y2).

    Returns:
        ``[N, 2]`` (x, y); the box centre where a mask is empty.
    """
    n, m = probs.shape[0], probs.shape[-1]
    if n == 0:
        return boxes.new_zeros(0, 2)
    u = (torch.arange(m, device=probs.device, dtype=probs.dtype) + 0.5) / m  # [M] cell centres
    mass = probs.sum((1, 2))
    fx = (probs.sum(1) * u).sum(1) / mass.clamp(min=1e-6)  # [N] fraction of the box width
    fy = (probs.sum(2) * u).sum(1) / mass.clamp(min=1e-6)
    empty = mass <= 1e-6
    fx, fy = torch.where(empty, 0.5, fx), torch.where(empty, 0.5, fy)
    x = boxes[:, 0] + fx * (boxes[:, 2] - boxes[:, 0])
    y = boxes[:, 1] + fy * (boxes[:, 3] - boxes[:, 1])
    return torch.stack([x, y], dim=1)
