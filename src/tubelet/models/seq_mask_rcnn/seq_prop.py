"""Seq-Prop head of Seq Mask R-CNN: an STM-style memory reader on the Mask R-CNN features.

Propose-Reduce supplementary Fig. 1 and REFERENCE_NOTES §1:

    memory encoder  P2 + conv7x7(mask) -> ResBlock(s2) -> ResBlock(s2) -> key 1x1 / value 1x1
    query encoder   P2                 -> ResBlock(s2) -> ResBlock(s2) -> key 1x1 / value 1x1
    read            softmax over the T*H*W memory positions of k_mem^T k_q / sqrt(D_k)
                    (the "NL block" of the figure); readout ++ query value
    decoder         conv3x3 -> ResBlock -> Refine(C3, 1/8) -> Refine(C2, 1/4) -> conv3x3 to 2
                    -> x4 bilinear -> softmax -> foreground channel

Each object is a batch element (K objects); the query features of the frame are computed once
and shared by all objects (broadcast over K). Shapes: K objects, T memory frames, D_k key and
D_v value width; (h, w) = the memory's size (stride 16, the paper's; stride 8 with
``mem_stride=8``), (h4, w4) = P2/C2 size, (h8, w8) = C3 size.

``mem_stride=8`` (an option, not the paper's) makes the encoders' second ResBlock stride 1, so
keys, values and the memory read live at stride 8: the same parameters (a strided 3x3 conv has the
weights of an unstrided one), 4x the positions. Small objects (10-30 px) cover one or two cells
at stride 16, and propagation IoU falls with object size (bench/propagation_accuracy.py).

``prior_mask=True`` (an option, not the paper's) also gives the decoder each object's mask in the
previous frame (RGMP / MaskTrack-style, the paper's reference [6]): the mask, average-pooled to the
decoder's three resolutions (memory stride, 1/8, 1/4), goes through one 3x3 conv per resolution
(1 -> channels) and is added to the decoder's features there. The three convs start at zero, so a
head trained without the prior computes exactly what it did until it is fine-tuned with it. In
training the prior is the reference frame's memory mask (then each prediction, with 3-frame
clips); in propagation it is the previous frame's aggregated prediction (the key-frame masks for
the first frame). The STM read is unchanged: the prior only tells the decoder where the object
was, at the resolution of the stride-4 features, which the stride-16 read lacks for small objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn


#: strides the memory read can run at (``SeqPropConfig.mem_stride``): 16 the paper's, 8 an option
MEM_STRIDES = (8, 16)


@dataclass
class SeqPropConfig:
    """Constructor arguments of :class:`SeqPropHead` (YAML presets map onto this)."""
    in_channels: int = 256        # P2 width (= FPN width: 256 paper)
    c2_channels: int = 256        # backbone C2 width (ResNet-50: 256, MobileNetV2: 24)
    c3_channels: int = 512        # backbone C3 width (ResNet-50: 512, MobileNetV2: 32)
    channels: int = 256           # encoder / decoder width ("mdim"; the 2nd ResBlock doubles it)
    key_channels: int = 64        # D_k (64 paper)
    value_channels: int = 256     # D_v (256 paper)
    mem_step: int = 5             # propagation: write a frame into memory every mem_step (paper 5)
    mem_cap: int | None = 20      # frames kept in memory (None = unbounded, see PropagationMemory)
    mem_stride: int = 16          # stride of keys / values / the memory read: 16 paper, 8 option
    siamese_init: bool = False    # start the memory encoder as a copy of the query encoder, so
    #                               keys of the same content match from step 0 (an init choice;
    #                               the paper's head is randomly initialised)
    prior_mask: bool = False      # option: the previous frame's mask as a decoder input (module
    #                               docstring); False = the paper's head

    @classmethod
    def paper(cls, **overrides) -> "SeqPropConfig":
        """The paper's head on ResNet-50 + a 256-channel FPN. mem_cap 20 covers 100 frames at
        mem_step 5, so it never binds on YouTube-VIS (at most 36 annotated frames per video)."""
        return replace(cls(), **overrides)

    @classmethod
    def cpu(cls, **overrides) -> "SeqPropConfig":
        """Narrow head for MobileNetV2 + a 64-channel FPN on 2 CPU cores at 192x320."""
        return replace(cls(in_channels=64, c2_channels=24, c3_channels=32, channels=64,
                           key_channels=32, value_channels=64, mem_step=5, mem_cap=8), **overrides)


class ResBlock(nn.Module):
    """``skip(x) + conv3x3(relu(conv3x3(relu(x))))``; ``skip`` is a 3x3 conv (with the stride)
    when the stride or the width changes, the identity otherwise (notes §1)."""

    def __init__(self, in_channels: int, out_channels: int | None = None, stride: int = 1):
        super().__init__()
        out_channels = out_channels or in_channels
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = None if (stride == 1 and in_channels == out_channels) else \
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x ``[B, C_in, H, W]`` -> ``[B, C_out, ceil(H / stride), ceil(W / stride)]``."""
        r = self.conv2(F.relu(self.conv1(F.relu(x))))
        return (x if self.skip is None else self.skip(x)) + r


class Refine(nn.Module):
    """STM refinement stage: ``ResBlock(ResBlock(conv3x3(skip)) + up2(prev))`` (notes §1)."""

    def __init__(self, skip_channels: int, channels: int):
        super().__init__()
        self.conv_skip = nn.Conv2d(skip_channels, channels, 3, padding=1)
        self.res_skip = ResBlock(channels)
        self.res_out = ResBlock(channels)

    def forward(self, skip: Tensor, prev: Tensor, extra: Tensor | None = None) -> Tensor:
        """skip ``[B, C_skip, 2h, 2w]`` (backbone map), prev ``[B, channels, h, w]`` ->
        ``[B, channels, 2h, 2w]``; ``extra`` (``[B, channels, 2h, 2w]``), when given, is added
        to the skip's projection (the mask prior of ``SeqPropHead(prior_mask=True)``)."""
        s = self.conv_skip(skip)
        s = self.res_skip(s if extra is None else s + extra)
        # size= rather than scale_factor=2: identical for padded (x32) inputs, and safe otherwise
        up = F.interpolate(prev, size=s.shape[-2:], mode="bilinear", align_corners=False)
        return self.res_out(s + up)


def memory_read(mem_keys: Tensor, mem_values: Tensor, query_keys: Tensor) -> Tensor:
    """STM memory read (the "NL block"): attention of each query position over every memory
    position of every memory frame.

    Args:
        mem_keys: ``[K, D_k, T, h, w]`` memory keys (one memory per object).
        mem_values: ``[K, D_v, T, h, w]``.
        query_keys: ``[K or 1, D_k, h, w]`` (1 = shared by all objects).
    Returns:
        ``[K, D_v, h, w]``: ``readout[:, :, q] = sum_m softmax_m(k_m . k_q / sqrt(D_k)) v_m``,
        the softmax taken over the T*h*w memory positions m.
    """
    num, d_k, t, h, w = mem_keys.shape
    mk = mem_keys.reshape(num, d_k, t * h * w).transpose(1, 2)  # [K, THW, D_k]
    qk = query_keys.expand(num, -1, -1, -1).reshape(num, d_k, h * w)  # [K, D_k, hw]
    attn = torch.softmax(torch.bmm(mk, qk) / math.sqrt(d_k), dim=1)  # [K, THW, hw]
    mv = mem_values.reshape(num, mem_values.shape[1], t * h * w)  # [K, D_v, THW]
    return torch.bmm(mv, attn).reshape(num, -1, h, w)  # [K, D_v, h, w]


class _Encoder(nn.Module):
    """Two ResBlocks (stride 2 then 2: 4 -> 16; with ``stride=8``, 2 then 1) and the key /
    value 1x1 projections."""

    def __init__(self, in_channels: int, channels: int, key_channels: int, value_channels: int,
                 stride: int = 16):
        super().__init__()
        if stride not in MEM_STRIDES:
            raise ValueError(f"memory stride must be {' or '.join(map(str, MEM_STRIDES))}, "
                             f"got {stride}")
        self.fuse = nn.Sequential(ResBlock(in_channels, channels, stride=2),
                                  ResBlock(channels, 2 * channels, stride=stride // 8))
        self.key = nn.Conv2d(2 * channels, key_channels, 1)
        self.value = nn.Conv2d(2 * channels, value_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.fuse(x)  # [B, 2 channels, h, w]
        return self.key(x), self.value(x)


class SeqPropHead(nn.Module):
    """The Seq-Prop head; see the module docstring and :class:`SeqPropConfig` (paper defaults).

    ``mem_step`` and ``mem_cap`` are kept as attributes for the propagation loop's
    :class:`~tubelet.models.seq_mask_rcnn.memory.PropagationMemory`; the module does not use them.
    """

    def __init__(self, in_channels: int = 256, c2_channels: int = 256, c3_channels: int = 512,
                 channels: int = 256, key_channels: int = 64, value_channels: int = 256,
                 mem_step: int = 5, mem_cap: int | None = 20, mem_stride: int = 16,
                 siamese_init: bool = False, prior_mask: bool = False):
        super().__init__()
        self.mem_step, self.mem_cap, self.prior_mask = mem_step, mem_cap, prior_mask
        self.mask_embed = nn.Conv2d(1, in_channels, 7, padding=3)
        self.memory_encoder = _Encoder(in_channels, channels, key_channels, value_channels,
                                       mem_stride)
        self.query_encoder = _Encoder(in_channels, channels, key_channels, value_channels,
                                      mem_stride)
        self.fuse = nn.Conv2d(2 * value_channels, channels, 3, padding=1)
        self.res = ResBlock(channels)
        self.refine3 = Refine(c3_channels, channels)  # 1/16 -> 1/8 (1/8 -> 1/8 at mem_stride 8)
        self.refine2 = Refine(c2_channels, channels)  # 1/8 -> 1/4
        self.predict = nn.Conv2d(channels, 2, 3, padding=1)
        if siamese_init:
            self.memory_encoder.load_state_dict(self.query_encoder.state_dict())
        if prior_mask:  # one conv per decoder resolution: memory stride, 1/8, 1/4; zero init
            self.prior = nn.ModuleList(nn.Conv2d(1, channels, 3, padding=1) for _ in range(3))
            for conv in self.prior:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    @classmethod
    def from_config(cls, cfg: SeqPropConfig, **overrides) -> "SeqPropHead":
        return cls(**{**vars(cfg), **overrides})

    def encode_memory(self, p2: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Memory key / value of one frame for K objects.

        Args:
            p2: ``[1 or K, C_p2, h4, w4]`` the frame's P2.
            masks: ``[K, H, W]`` object masks (probabilities or {0, 1}) at input resolution,
                ``H <= 4 h4``; padded bottom / right to ``4 h4`` x ``4 w4`` (the padded input),
                then bilinearly resized to P2's size, as in the released code.
        Returns:
            keys ``[K, D_k, h, w]``, values ``[K, D_v, h, w]`` (stride 16, or ``mem_stride``).
        """
        h4, w4 = p2.shape[-2:]
        if masks.shape[-2] > 4 * h4 or masks.shape[-1] > 4 * w4:
            raise ValueError(f"masks {tuple(masks.shape)} larger than 4x P2 {(h4, w4)}")
        m = F.pad(masks.float(), (0, 4 * w4 - masks.shape[-1], 0, 4 * h4 - masks.shape[-2]))
        m = F.interpolate(m[:, None], size=(h4, w4), mode="bilinear", align_corners=False)
        x = p2 + self.mask_embed(m)  # [K, C_p2, h4, w4] (P2 broadcast over objects)
        return self.memory_encoder(x)

    def encode_query(self, p2: Tensor) -> tuple[Tensor, Tensor]:
        """p2 ``[B, C_p2, h4, w4]`` -> query keys ``[B, D_k, h, w]``, values ``[B, D_v, h, w]``."""
        return self.query_encoder(p2)

    def _priors(self, prior: Tensor | None, sizes: list[tuple[int, int]], num: int,
                full: tuple[int, int]) -> list[Tensor | None]:
        """The prior's three embeddings ``[K, channels, h_i, w_i]`` (None without the option).

        prior ``[K, H, W]``, ``H <= full[0]``: padded bottom / right to ``full`` (the padded
        input), average-pooled to each size, then the size's 3x3 conv."""
        if not self.prior_mask:
            return [None, None, None]
        if prior is None:
            raise ValueError("this Seq-Prop head was built with prior_mask=True: pass prior, the "
                             "objects' masks in the previous frame")
        if prior.shape[0] != num or prior.shape[-2] > full[0] or prior.shape[-1] > full[1]:
            raise ValueError(f"prior {tuple(prior.shape)} does not fit {num} objects of "
                             f"{full} pixels")
        m = F.pad(prior.float(), (0, full[1] - prior.shape[-1], 0, full[0] - prior.shape[-2]))
        return [conv(F.adaptive_avg_pool2d(m[:, None], hw)) for conv, hw in zip(self.prior, sizes)]

    def decode(self, readout: Tensor, query_values: Tensor, c3: Tensor, c2: Tensor,
               out_size: tuple[int, int] | None = None, return_logits: bool = False,
               prior: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Decoder: readout ``[K, D_v, h, w]``, query_values ``[1 or K, D_v, h, w]``, c3
        ``[1 or K, C3, h8, w8]``, c2 ``[1 or K, C2, h4, w4]`` -> foreground probabilities
        ``[K, 4 h4, 4 w4]``, cropped to ``out_size`` (the valid image) when given. With
        ``return_logits`` also the foreground logit ``z = l_fg - l_bg`` of the same shape
        (``probs == sigmoid(z)``; for losses that must not saturate). ``prior`` ``[K, H, W]``
        (``H <= 4 h4``): the objects' previous masks, required with ``prior_mask``, ignored
        without it."""
        num = readout.shape[0]
        h4, w4 = c2.shape[-2:]
        p16, p8, p4 = self._priors(prior, [tuple(readout.shape[-2:]), tuple(c3.shape[-2:]),
                                           (h4, w4)], num, (4 * h4, 4 * w4))
        x = torch.cat([readout, query_values.expand(num, -1, -1, -1)], dim=1)  # [K, 2 D_v, h, w]
        x = self.fuse(x)
        x = self.res(x if p16 is None else x + p16)
        x = self.refine3(c3.expand(num, -1, -1, -1), x, p8)  # [K, channels, h8, w8]
        x = self.refine2(c2.expand(num, -1, -1, -1), x, p4)  # [K, channels, h4, w4]
        logits = self.predict(F.relu(x))  # [K, 2, h4, w4]
        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        probs = torch.softmax(logits, dim=1)[:, 1]  # [K, 4 h4, 4 w4] foreground
        if out_size is not None:
            probs = probs[:, :out_size[0], :out_size[1]]
            logits = logits[..., :out_size[0], :out_size[1]]
        if return_logits:
            return probs, logits[:, 1] - logits[:, 0]
        return probs

    def forward(self, mem_keys: Tensor, mem_values: Tensor, p2: Tensor, c3: Tensor, c2: Tensor,
                out_size: tuple[int, int] | None = None, return_logits: bool = False,
                prior: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Segment one query frame for K objects from their memories.

        Args:
            mem_keys: ``[K, D_k, T, h, w]``; mem_values: ``[K, D_v, T, h, w]``.
            p2: ``[1, C_p2, h4, w4]``; c3: ``[1, C3, h8, w8]``; c2: ``[1, C2, h4, w4]`` of the
                query frame (shared by the K objects).
            out_size: valid (H, W) to crop the ``4 h4`` x ``4 w4`` output to.
            return_logits: also return the foreground logits (see :meth:`decode`).
            prior: ``[K, H, W]`` the objects' masks in the previous frame (at input resolution,
                ``H <= 4 h4``); required with ``prior_mask``, ignored without it.
        Returns:
            ``[K, H, W]`` per-object foreground probabilities, *before* soft aggregation
            (:func:`~tubelet.models.seq_mask_rcnn.aggregate.soft_aggregate` merges them);
            with ``return_logits`` a pair (probabilities, logits).
        """
        q_keys, q_values = self.encode_query(p2)
        readout = memory_read(mem_keys, mem_values, q_keys)
        return self.decode(readout, q_values, c3, c2, out_size, return_logits, prior)
