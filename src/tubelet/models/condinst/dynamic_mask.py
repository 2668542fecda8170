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


class DynamicMaskHead(nn.Module):
    """Runs N per-instance dynamic networks as batched matrix products (a 1x1 conv of one
    instance's network is ``W [out, in] @ x [in, HW] + b``; ``torch.baddbmm`` does all N at once,
    2-3.5x faster on a CPU than the equivalent grouped ``conv2d``, the same sums up to float
    rounding). The first layer reads an input shared by the instances of an image (the relative
    coordinates are folded into its weights and bias, see :meth:`forward`): one GEMM for all N
    when they come from one image.

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
        b, c, h, w = mask_feats.shape
        n = params.shape[0]
        if n == 0:
            return mask_feats.new_zeros(0, 1, h, w)
        weights, biases = self.split_params(params)  # weights[0] [N, out, (2 +) C_mask]
        feats = mask_feats.reshape(b, c, h * w)  # [B, C_mask, HW]
        w0, b0 = weights[0], biases[0]
        if self.rel_coords:
            # layer 0 on [(grid - loc) / soi ; F] equals [W_xy / soi, W_F] @ [grid ; F] with the
            # bias b - (W_xy / soi) @ loc: the input is then shared by every instance of an image
            # (no per-instance coordinate maps; one GEMM for all N when they share one image)
            s = mask_stride
            xs = torch.arange(w, device=feats.device, dtype=feats.dtype) * s + s // 2
            ys = torch.arange(h, device=feats.device, dtype=feats.dtype) * s + s // 2
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            grid = torch.stack([xx.reshape(-1), yy.reshape(-1)])  # [2, HW] (x, y)
            feats = torch.cat([grid[None].expand(b, 2, h * w), feats], 1)  # [B, 2 + C_mask, HW]
            w_xy = w0[:, :, :2] / sizes_of_interest.to(w0.dtype)[:, None, None]  # [N, out, 2]
            b0 = b0 - (w_xy @ instance_locations.to(w0.dtype)[:, :, None])[:, :, 0]
            w0 = torch.cat([w_xy, w0[:, :, 2:]], 2)
        out0 = w0.shape[1]
        if b == 1:  # every instance reads the same input: [N*out, in] @ [in, HW]
            x = torch.addmm(b0.reshape(-1, 1), w0.reshape(n * out0, -1), feats[0])
            x = x.view(n, out0, h * w)
        else:
            x = torch.baddbmm(b0[:, :, None], w0, feats[image_index])  # [N, out, HW]
        for wk, bk in zip(weights[1:], biases[1:]):  # ReLU between layers, none after the last
            x = torch.baddbmm(bk[:, :, None], wk, F.relu(x))  # [N, out, HW]
        return x.reshape(n, 1, h, w)
