"""Deformable DETR + dynamic mask head + contrastive head: the contrastive online method's network.

    images [B, 3, H, W] -> backbone C2..C5 -> input projections (1x1 conv + GN per level; extra
    levels: 3x3 stride-2 conv + GN on C5, then on the previous extra) -> L maps [B, D, H_l, W_l]
    -> DeformableTransformer (sine positions + level embeddings, E encoder / N_dec decoder layers,
    Q learned queries, iterative box refinement) -> per decoder layer d:
        class head_d(hs_d) -> logits, box boxes_d, controller(hs_d) -> dynamic-head parameters;
    contrastive head (MLP D-256-256-256, 3 layers, Sec. 3.2) on the last layer's embeddings;
    mask features F_mask from C2 + encoder memory (stride 4).

Output of ``forward`` (DETR's format; shapes with D the width, P the dynamic-head parameters):

    "pred_logits":  [B, Q, C]   class logits of the last decoder layer (sigmoid / focal, no "no object")
    "pred_boxes":   [B, Q, 4]   (cx, cy, w, h) normalised to the padded image
    "query_embeds": [B, Q, D]   decoder output embeddings (the paper's E)
    "mask_params":  [B, Q, P]   controller outputs (absent when masks are off)
    "contrast_embeds": [B, Q, D_e] contrastive embeddings of the last layer
    "aux_outputs":  list of N_dec - 1 dicts with the four per-layer keys above, layer 0 first
    "mask_feats":   [B, C_mask, H/4, W/4] (absent when masks are off)
    "image_size":   (H, W)

``infer`` (inference, one layer): the last layer's ``pred_logits``, ``pred_boxes``,
``mask_params``, ``contrast_embeds``, plus ``mask_feats`` and ``image_size`` -- what a frame's
detections need. The earlier layers' class heads and controllers are not run. After
:meth:`DeformableDETR.fuse_for_inference` it runs as a TorchScript graph traced and frozen per
input shape (:class:`~tubelet.models.frozen.FrozenByShape`, as CondInst's dense part).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tubelet.models.backbones import Backbone
from tubelet.models.condinst.fcos import group_norm
from tubelet.models.deformable_detr.mask_head import QueryMaskHead
from tubelet.models.deformable_detr.transformer import DeformableTransformer
from tubelet.models.embed_head import EmbedHead
from tubelet.models.frozen import FrozenByShape
from tubelet.models.weights import is_random_init

_LAYER_KEYS = ("pred_logits", "pred_boxes", "query_embeds", "mask_params")


@dataclass
class DeformableDETRConfig:
    """Constructor arguments of :class:`DeformableDETR` (YAML presets map onto this)."""
    num_classes: int = 40                 # C foreground classes
    backbone: str = "resnet50"            # resnet50 (paper) | mobilenet_v2 (CPU) | resnet18
    pretrained: str | None = None         # None random | "imagenet" | path to a .pth
    backbone_norm: str | None = None      # frozen_bn | bn; None: frozen_bn if pretrained else bn
    freeze_at: int | None = None          # freeze stages 1..k; None: 2 if pretrained else 0
    d_model: int = 256                    # transformer width D (256 paper)
    n_heads: int = 8                      # attention heads (8 paper)
    enc_layers: int = 6                   # encoder layers (6 paper)
    dec_layers: int = 6                   # decoder layers (6 paper)
    dim_feedforward: int = 1024           # FFN width (1024 paper)
    dropout: float = 0.1                  # transformer dropout (0.1 paper)
    num_levels: int = 4                   # feature levels: C3-C5 + (num_levels - 3) extra (4 paper)
    n_points: int = 4                     # sampling points per head and level (4 paper)
    num_queries: int = 300                # Q (300 paper)
    prior_prob: float = 0.01              # initial class probability (focal-loss init)
    with_masks: bool = True               # build the mask branch and dynamic head
    mask_branch_channels: int = 128       # mask-branch width
    mask_branch_convs: int = 4            # mask-branch convs after fusion
    mask_channels: int = 8                # C_mask (8 paper)
    dynamic_channels: int = 8             # dynamic head width (8 paper)
    dynamic_layers: int = 3               # dynamic head layers (3 paper) -> 169 params
    controller_layers: int = 1            # controller depth (1 = linear)
    embed_dim: int = 256                  # contrastive head width and output (256 paper)
    embed_layers: int = 3                 # contrastive head layers (3 paper)

    @classmethod
    def paper(cls, num_classes: int = 40, **overrides) -> "DeformableDETRConfig":
        """The paper's detector: ResNet-50, 6/6 layers, 300 queries, width 256, FFN 1024,
        8 heads, 4 levels, 4 points (REFERENCE_NOTES §4)."""
        return cls(num_classes=num_classes, **overrides)

    @classmethod
    def cpu(cls, num_classes: int = 40, **overrides) -> "DeformableDETRConfig":
        """A config for 2 CPU cores at 192x320: MobileNetV2 (ImageNet), width 64, 1/2 layers,
        50 queries, 3 levels (C3-C5), a 16-channel mask branch, contrastive embeddings of width 64.

        Measured (single-thread CPU time, same busy 2-core machine, interleaved runs) against
        condinst-track's bench network (21 frames/s end to end): this preset 1.04-1.16x its time
        with 1 thread, 0.8x with 2; 2 encoder layers and a 32-channel, 2-conv mask branch 1.22-1.36x.
        The deformable encoder is overhead-bound (1,260 tokens, many small ops), the stride-4
        mask branch is MAC-bound (~165 vs ~55 MMAC at 32 vs 16 channels)."""
        kwargs = dict(num_classes=num_classes, backbone="mobilenet_v2", pretrained="imagenet",
                      d_model=64, n_heads=4, enc_layers=1, dec_layers=2, dim_feedforward=256,
                      dropout=0.0, num_levels=3, n_points=4, num_queries=50,
                      mask_branch_channels=16, mask_branch_convs=1, embed_dim=64)
        kwargs.update(overrides)
        return cls(**kwargs)


class DeformableDETR(nn.Module):
    """See the module docstring; keyword arguments as :class:`DeformableDETRConfig`."""

    def __init__(self, num_classes: int, backbone: str = "resnet50",
                 pretrained: str | os.PathLike | None = None, backbone_norm: str | None = None,
                 freeze_at: int | None = None, d_model: int = 256, n_heads: int = 8,
                 enc_layers: int = 6, dec_layers: int = 6, dim_feedforward: int = 1024,
                 dropout: float = 0.1, num_levels: int = 4, n_points: int = 4,
                 num_queries: int = 300, prior_prob: float = 0.01, with_masks: bool = True,
                 mask_branch_channels: int = 128, mask_branch_convs: int = 4,
                 mask_channels: int = 8, dynamic_channels: int = 8, dynamic_layers: int = 3,
                 controller_layers: int = 1, embed_dim: int = 256, embed_layers: int = 3,
                 finders=None):
        super().__init__()
        if num_levels < 1:
            raise ValueError("num_levels must be >= 1")
        has_weights = not is_random_init(pretrained)
        norm = backbone_norm or ("frozen_bn" if has_weights else "bn")
        freeze_at = (2 if has_weights else 0) if freeze_at is None else freeze_at
        self.backbone = Backbone(backbone, pretrained=pretrained, norm=norm, freeze_at=freeze_at,
                                 return_c2=with_masks, finders=finders)
        self.in_features = ["c3", "c4", "c5"][:num_levels]
        chans = self.backbone.out_channels
        proj = [nn.Sequential(nn.Conv2d(chans[k], d_model, 1), group_norm(d_model))
                for k in self.in_features]
        for i in range(num_levels - len(self.in_features)):  # extra levels, stride 64, 128, ...
            cin = chans["c5"] if i == 0 else d_model
            proj.append(nn.Sequential(nn.Conv2d(cin, d_model, 3, stride=2, padding=1),
                                      group_norm(d_model)))
        self.input_proj = nn.ModuleList(proj)
        for seq in self.input_proj:
            nn.init.xavier_uniform_(seq[0].weight)
            nn.init.zeros_(seq[0].bias)
        self.transformer = DeformableTransformer(d_model, n_heads, enc_layers, dec_layers,
                                                 dim_feedforward, dropout, num_levels, n_points,
                                                 num_queries)
        # one class head per decoder layer (box refinement clones the heads), focal-loss prior init
        self.class_embed = nn.ModuleList([nn.Linear(d_model, num_classes) for _ in range(dec_layers)])
        for head in self.class_embed:
            nn.init.constant_(head.bias, -math.log((1 - prior_prob) / prior_prob))
        self.mask_head = None
        if with_masks:
            self.mask_head = QueryMaskHead(d_model, chans["c2"], min(3, num_levels),
                                           mask_branch_channels, mask_branch_convs, mask_channels,
                                           dynamic_channels, dynamic_layers, controller_layers)
        self.contrast_head = EmbedHead(d_model, embed_dim, embed_dim, embed_layers)
        self.num_classes, self.num_queries, self.d_model = num_classes, num_queries, d_model
        self.frozen_infer: FrozenByShape | None = None  # set by fuse_for_inference (one-way)

    @classmethod
    def from_config(cls, cfg: DeformableDETRConfig, **overrides) -> "DeformableDETR":
        """``DeformableDETR(**vars(cfg), **overrides)``."""
        kwargs = dict(vars(cfg))
        kwargs.update(overrides)
        return cls(**kwargs)

    def forward(self, images: Tensor) -> dict:
        """images ``[B, 3, H, W]`` ImageNet-normalised -> the output dict of the module docstring."""
        feats, memory, shapes, hs, boxes = self._trunk(images)
        layers = []
        for d in range(hs.shape[0]):
            layer = {"pred_logits": self.class_embed[d](hs[d]), "pred_boxes": boxes[d],
                     "query_embeds": hs[d]}
            if self.mask_head is not None:
                layer["mask_params"] = self.mask_head.params(hs[d])
            layers.append(layer)
        out = dict(layers[-1])
        out["aux_outputs"] = layers[:-1]
        out["contrast_embeds"] = self.contrast_head(hs[-1])
        out["image_size"] = tuple(images.shape[-2:])
        if self.mask_head is not None:
            out["mask_feats"] = self._mask_feats(feats, memory, shapes)
        return out

    def _trunk(self, images: Tensor) -> tuple:
        """Backbone, input projections and transformer: ``(feats, memory [B, S, D], shapes,
        hs [N_dec, B, Q, D], boxes [N_dec, B, Q, 4])``."""
        feats = self.backbone(images)
        srcs = [self.input_proj[i](feats[k]) for i, k in enumerate(self.in_features)]
        x = feats["c5"]
        for proj in self.input_proj[len(self.in_features):]:
            x = proj(x)
            srcs.append(x)
        memory, shapes, hs, boxes = self.transformer(srcs)
        return feats, memory, shapes, hs, boxes

    def _mask_feats(self, feats: dict, memory: Tensor, shapes) -> Tensor:
        b, d = memory.shape[0], memory.shape[2]
        maps = [m.transpose(1, 2).reshape(b, d, h, w)  # [B, D, H_l, W_l]
                for m, (h, w) in zip(memory.split([h * w for h, w in shapes], 1), shapes)]
        return self.mask_head.mask_features(feats["c2"], maps)

    def _infer_tensors(self, images: Tensor) -> tuple[Tensor, ...]:
        """The last layer only: ``(pred_logits, pred_boxes, contrast_embeds, mask_params,
        mask_feats)`` (the last two only with masks)."""
        feats, memory, shapes, hs, boxes = self._trunk(images)
        last = hs[-1]  # [B, Q, D]
        out = (self.class_embed[-1](last), boxes[-1], self.contrast_head(last))
        if self.mask_head is None:
            return out
        return out + (self.mask_head.params(last), self._mask_feats(feats, memory, shapes))

    @torch.no_grad()
    def infer(self, images: Tensor) -> dict:
        """Inference outputs of the last decoder layer (module docstring, ``infer``)."""
        run = self.frozen_infer if self.frozen_infer is not None else self._infer_tensors
        keys = ("pred_logits", "pred_boxes", "contrast_embeds", "mask_params", "mask_feats")
        out = dict(zip(keys, run(images)))
        out["image_size"] = tuple(images.shape[-2:])
        return out

    def fuse_for_inference(self) -> None:
        """Run :meth:`infer` as a TorchScript graph frozen per input shape. One-way, like
        BatchNorm folding (called by the method's ``fuse_for_inference``)."""
        self.frozen_infer = FrozenByShape(self, self._infer_tensors)

    def mask_logits(self, outputs: dict, layer: dict, image_index: Tensor,
                    query_index: Tensor) -> Tensor:
        """Mask logits ``[N, H/4, W/4]`` of N (image, query) pairs of one decoder layer's outputs.

        Args:
            outputs: the forward output (for ``mask_feats`` and ``image_size``).
            layer: ``outputs`` itself or one of ``outputs["aux_outputs"]``.
            image_index, query_index: ``[N]`` long.
        """
        if self.mask_head is None:
            raise RuntimeError("this model was built with with_masks=False")
        return self.mask_head(outputs["mask_feats"], layer["mask_params"][image_index, query_index],
                              image_index, layer["pred_boxes"][image_index, query_index],
                              outputs["image_size"])

