"""IAI's identification bank (Sec. 3.2 "ID Embedding", Eq. 1-2; AOT's patch-wise identity bank).

Eq. 1: the one-hot ID mask ``Y in {0,1}^{(N+1) x HW}`` sets ``Y_{U_i} = M_i`` for each detected
instance i with unique ID U_i and mask M_i. Here channel c < N is slot c (slot N-1, "new", is never
written: an instance has its own slot by the time the memory is written) and channel N is the
background, which every pixel covered by no mask takes. Overlaps keep the earlier instance (the
order masks are painted in at inference, best first), so Y stays one-hot.

Eq. 2: ``E = Y^T D`` with an identity bank D in R^{(N+1) x C}. The patch-wise form (AOT, and the
IAI notes) lets D vary with the pixel's offset inside a patch: a conv of kernel s+1, stride s,
padding s/2 (s = 32: kernel 33, padding 16, 256 channels) on the full-resolution one-hot mask; on a
one-hot input the output at a patch is the sum, over the window's pixels, of the kernel column of
each pixel's ID (plus the bias). Its output has C5's size ``ceil(H/32) x ceil(W/32)``.

The weights are an ``nn.Conv2d``'s, but the forward pass uses the one-hot structure: each output
is the sum, over its window's pixels, of one kernel column picked by the pixel's ID and offset, an
``embedding_bag`` over the kernel laid out as a table (no one-hot tensor is built). PyTorch's CPU
(oneDNN) kernel for this 33x33 stride-32 conv was measured at 3.0 s forward + backward for one
64x96 mask on the 2-core machine, unfold + matmul of the one-hot at 0.09 s; against that matmul,
on one thread, the table lookup takes 7 ms instead of 41 ms (stride 16, 192x320) and 139 ms
instead of 197 ms (the paper's stride 32, 256 channels, 384x640). The test compares it with the
convolution itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def id_label_map(slots: Tensor, masks: Tensor, num_ids: int) -> Tensor:
    """Paint instance masks into an ID label map (Eq. 1 as indices).

    Args:
        slots: ``[K]`` long slot of each mask; entries outside 0..N-2 (-1 = dropped, N-1 = "new")
            are not painted.
        masks: ``[K, H, W]`` bool, in priority order (an earlier mask keeps overlapping pixels).
        num_ids: N.

    Returns:
        ``[H, W]`` long in 0..N, N = background.
    """
    if slots.shape[0] != masks.shape[0]:
        raise ValueError(f"{slots.shape[0]} slots for {masks.shape[0]} masks")
    labels = torch.full(masks.shape[-2:], num_ids, dtype=torch.long, device=masks.device)
    for s, m in zip(slots.tolist(), masks):
        if 0 <= s <= num_ids - 2:
            labels[m.bool() & (labels == num_ids)] = s
    return labels


class IDBank(nn.Module):
    """One-hot ID mask -> patch-wise ID embedding.

    Args:
        num_ids: N (the one-hot mask has N + 1 channels with the background).
        channels: embedding width C (the association block's width, 256).
        stride: patch stride s (32, C5's stride; even); kernel s+1, padding s/2.
    """

    def __init__(self, num_ids: int = 20, channels: int = 256, stride: int = 32):
        super().__init__()
        if stride % 2:
            raise ValueError(f"the ID bank's stride must be even (padding s/2), got {stride}")
        self.num_ids, self.stride = num_ids, stride
        self.embed = nn.Conv2d(num_ids + 1, channels, stride + 1, stride=stride,
                               padding=stride // 2)

    def forward(self, labels: Tensor) -> Tensor:
        """labels ``[B, H, W]`` long in 0..N (N = background) -> ``[B, C, ceil(H/s), ceil(W/s)]``.
        """
        b, h, w = labels.shape
        s, conv = self.stride, self.embed
        k, n1 = s + 1, self.num_ids + 1
        # each output patch: the (s+1)^2 pixels of its window (s/2 of zero padding = no pixel)
        lab = F.pad(labels, (s // 2,) * 4, value=-1)  # [B, H + s, W + s]
        win = lab.unfold(1, k, s).unfold(2, k, s)  # [B, ceil(H/s), ceil(W/s), k, k]
        ph, pw = win.shape[1:3]
        valid = win >= 0
        # row of the kernel table for (ID c, offset o): c k^2 + o; padding -> any row, weight 0
        offset = torch.arange(k * k, device=labels.device).view(k, k)
        rows = torch.where(valid, win * (k * k) + offset, 0).reshape(-1, k * k)  # [B P, k^2]
        table = conv.weight.permute(1, 2, 3, 0).reshape(n1 * k * k, -1)  # [(N+1) k^2, C]
        out = F.embedding_bag(rows, table, mode="sum",
                              per_sample_weights=valid.reshape(-1, k * k).to(table.dtype))
        out = out + conv.bias  # [B P, C]
        return out.reshape(b, ph, pw, -1).permute(0, 3, 1, 2)  # [B, C, ph, pw]
