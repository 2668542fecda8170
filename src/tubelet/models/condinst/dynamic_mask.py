"""CondInst's dynamic mask head (Tian et al. 2020, Sec. 3.2-3.3).

Each instance n gets its own tiny fully convolutional network of ``num_layers`` 1x1 convs whose
weights and biases are the controller's output at the instance's location. Its input is the
shared mask-branch output ``F_mask`` ``[C_mask, H_m, W_m]`` concatenated with the coordinates of
every mask pixel relative to the instance location (2 channels; input order [dx, dy, F_mask]),
so the same features yield a different mask per instance. Default (paper): 3 layers,
8 channels, C_mask = 8: (8 + 2) * 8 + 8  +  8 * 8 + 8  +  8 * 1 + 1 = 169 parameters.

Parameter layout in the controller vector: all layers' weights first (layer 0, 1, ...; each
``[out, in]`` row-major), then all biases in the same layer order.

Relative coordinates: ``(pixel - instance_location) / size_of_interest`` per axis, x first,
where size_of_interest is the upper size bound of the instance's FPN level (64, 128, ... for
P3, ...), keeping the coordinates within a few units whatever the object size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def dynamic_params_sizes(in_channels: int = 8, channels: int = 8, num_layers: int = 3,
                         rel_coords: bool = True) -> tuple[list[int], list[int]]:
    """(weight sizes, bias sizes) per layer of the dynamic head."""
    ins = [in_channels + (2 if rel_coords else 0)] + [channels] * (num_layers - 1)
    outs = [channels] * (num_layers - 1) + [1]
    return [i * o for i, o in zip(ins, outs)], list(outs)


def relative_coords(instance_locations: Tensor, mask_locations: Tensor,
                    sizes_of_interest: Tensor) -> Tensor:
    """Coordinates of mask pixels relative to each instance.

    Args:
        instance_locations: ``[N, 2]`` (x, y) image coordinates of the instances' locations.
        mask_locations: ``[H_m * W_m, 2]`` (x, y) image coordinates of the mask pixels.
        sizes_of_interest: ``[N]`` normaliser per instance.

    Returns:
        ``[N, 2, H_m * W_m]`` with channel 0 = dx, 1 = dy.
    """
    rel = mask_locations[None, :, :] - instance_locations[:, None, :]  # [N, HW, 2]
    rel = rel / sizes_of_interest.to(rel.dtype)[:, None, None]
    return rel.permute(0, 2, 1)


class DynamicMaskHead(nn.Module):
    """Runs N per-instance dynamic networks as batched matrix products (a 1x1 conv of one
    instance's network is ``W [out, in] @ x [in, HW] + b``; ``torch.baddbmm`` does all N at once,
    2-3.5x faster on a CPU than the equivalent grouped ``conv2d``, the same sums up to float
    rounding).

    Args:
        in_channels: C_mask, channels of the mask branch output (8).
        channels: width of the hidden dynamic layers (8).
        num_layers: dynamic 1x1 conv layers (3); ReLU between them, none after the last.
        rel_coords: append the 2 relative-coordinate channels to the input (CondInst default).
    """

    def __init__(self, in_channels: int = 8, channels: int = 8, num_layers: int = 3,
                 rel_coords: bool = True):
        super().__init__()
        if num_layers < 1:
            raise ValueError("the dynamic head needs at least one layer")
        self.in_channels, self.channels, self.num_layers = in_channels, channels, num_layers
        self.rel_coords = rel_coords
        self.weight_sizes, self.bias_sizes = dynamic_params_sizes(in_channels, channels,
                                                                  num_layers, rel_coords)
        self.num_params = sum(self.weight_sizes) + sum(self.bias_sizes)

    def split_params(self, params: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """``[N, P]`` -> (weights ``[N, out, in]`` per layer, biases ``[N, out]`` per layer)."""
        if params.shape[1] != self.num_params:
            raise ValueError(f"expected {self.num_params} dynamic params, got {params.shape[1]}")
        n = params.shape[0]
        chunks = torch.split(params, self.weight_sizes + self.bias_sizes, dim=1)
        k = self.num_layers
        weights = [w.reshape(n, b.shape[1], -1) for w, b in zip(chunks[:k], chunks[k:])]
        return weights, list(chunks[k:])

    def forward(self, mask_feats: Tensor, mask_stride: int, params: Tensor, image_index: Tensor,
                instance_locations: Tensor, sizes_of_interest: Tensor) -> Tensor:
        """Mask logits of N instances.

        Args:
            mask_feats: ``[B, C_mask, H_m, W_m]`` mask-branch output at ``mask_stride``.
            mask_stride: stride of ``mask_feats`` (pixel (i, j) sits at ``(j s + s//2, i s + s//2)``).
            params: ``[N, P]`` controller outputs.
            image_index: ``[N]`` long, which batch image each instance belongs to.
            instance_locations: ``[N, 2]`` (x, y) of each instance's location.
            sizes_of_interest: ``[N]`` relative-coordinate normaliser.

        Returns:
            ``[N, 1, H_m, W_m]`` logits at ``mask_stride``.
        """
        _, c, h, w = mask_feats.shape
        n = params.shape[0]
        if n == 0:
            return mask_feats.new_zeros(0, 1, h, w)
        x = mask_feats[image_index].reshape(n, c, h * w)  # [N, C_mask, HW]
        if self.rel_coords:
            s = mask_stride
            xs = torch.arange(w, device=x.device, dtype=x.dtype) * s + s // 2
            ys = torch.arange(h, device=x.device, dtype=x.dtype) * s + s // 2
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # [HW, 2]
            rel = relative_coords(instance_locations.to(x.dtype), grid, sizes_of_interest)
            x = torch.cat([rel, x], dim=1)  # [N, 2 + C_mask, HW]
        weights, biases = self.split_params(params)
        for k, (wk, bk) in enumerate(zip(weights, biases)):  # wk [N, out, in], bk [N, out]
            x = torch.baddbmm(bk[:, :, None], wk, x)  # [N, out, HW]
            if k < self.num_layers - 1:
                x = F.relu(x)
        return x.reshape(n, 1, h, w)
