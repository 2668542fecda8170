"""CondInst (Tian, Shen, Chen, ECCV 2020): FCOS + dynamic mask heads, end to end.

    images [B, 3, H, W] -> backbone C3-C5 -> FPN P3-P7 -> FCOS head (cls, ltrb, centerness,
    controller) on P3-P7; mask branch on P3-P5 -> F_mask [B, 8, H/8, W/8];
    per positive location: dynamic mask head(F_mask + relative coords) -> mask logits at stride 8,
    upsampled x2 to stride 4 (the paper's mask output at 1/4 resolution).

Training (``model.train(); losses = model(images, targets)``) returns
``{"loss_cls", "loss_box", "loss_ctr", "loss_mask"}`` (weights 1, as in the paper; the trainer sums):
focal loss / #positives, GIoU weighted by centerness targets / sum of those targets, centerness BCE
/ #positives, dice loss averaged over at most ``max_proposals`` sampled positives per image
against ground-truth masks area-averaged to stride 4 (plus ``mask_bce_weight`` x their mean
per-pixel BCE: an option, not the paper's, which keeps a gradient on the masks when dice
saturates at 1 with every pixel's probability near 0).

Inference (``model.predict(images)``) returns one :class:`Detections` per image.

Lower-level steps for methods built on top (e.g. the contrastive embedding method):
``outputs = model.forward_heads(images)``, ``assigned = model.assign(outputs, targets)``,
``losses = model.compute_losses(outputs, assigned, targets)``; ``outputs.features[b, l]`` is the
classification-tower feature at location l, ``assigned[b].gt_index[l]`` its ground-truth object.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tubelet.models.backbones import Backbone
from tubelet.models.condinst.dynamic_mask import DynamicMaskHead
from tubelet.models.condinst.fcos import FCOSHead
from tubelet.models.condinst.losses import (centerness_loss, giou_loss, mask_loss,
                                            sigmoid_focal_loss)
from tubelet.models.condinst.mask_branch import MaskBranch
from tubelet.models.condinst.postprocess import (Detections, paste_masks, scale_boxes,
                                                 select_candidates)
from tubelet.models.condinst.targets import (FCOSTargets, fcos_targets, level_size_ranges,
                                             level_tables)
from tubelet.models.fpn import FPN
from tubelet.models.frozen import FrozenByShape
from tubelet.models.weights import is_random_init


@dataclass
class CondInstConfig:
    """Constructor arguments of :class:`CondInst`, one per field (YAML presets map onto this)."""
    num_classes: int = 40                 # C foreground classes (40 for YouTube-VIS 2019/2021)
    backbone: str = "mobilenet_v2"        # mobilenet_v2 (CPU default) | resnet18 | resnet50
    pretrained: str | None = None         # None/"none" random | "imagenet" | path to a .pth
    backbone_norm: str | None = None      # frozen_bn | bn; None: frozen_bn if pretrained else bn
    freeze_at: int | None = None          # freeze stages 1..k; None: 2 if pretrained else 0
    fpn_channels: int = 256               # FPN and head width (256 paper; 64-128 on CPU)
    top_levels: int = 2                   # P6, P7 on top of P5 (FCOS)
    num_convs: int = 4                    # convs per FCOS tower (4 paper)
    size_boundaries: tuple = (64, 128, 256, 512)  # FCOS size ranges between levels (pixels)
    center_radius: float | None = 1.5     # centre-sampling radius in strides; None = whole box
    box_activation: str = "relu"          # relu (stride-normalised FCOS) | exp
    prior_prob: float = 0.01              # initial foreground probability (focal-loss init)
    focal_alpha: float = 0.25             # focal loss alpha
    focal_gamma: float = 2.0              # focal loss gamma
    mask_in_features: tuple = ("p3", "p4", "p5")  # mask-branch inputs; ("p2", ...) for stride 4
    mask_branch_channels: int = 128       # mask-branch width (128 paper)
    mask_branch_convs: int = 4            # mask-branch convs after fusion (4 paper)
    mask_channels: int = 8                # C_mask (8 paper)
    dynamic_channels: int = 8             # dynamic head width (8 paper)
    dynamic_layers: int = 3               # dynamic head 1x1 conv layers (3 paper) -> 169 params
    rel_coords: bool = True               # relative coordinates into the dynamic head (paper)
    mask_out_stride: int = 4              # stride of the mask output / loss (1/4, paper)
    max_proposals: int = 500              # positives per image used by the mask loss; -1 = all
    score_thr: float = 0.05               # inference: class probability threshold
    pre_nms_topk: int = 1000              # inference: candidates kept per level before NMS
    nms_thr: float = 0.6                  # inference: class-aware box NMS IoU
    max_detections: int = 100             # inference: detections kept per image
    mask_thr: float = 0.5                 # inference: mask probability threshold
    mask_bce_weight: float = 0.0          # + weight x pixel BCE in loss_mask (0: dice only, paper)


@dataclass
class HeadOutputs:
    """Dense outputs of one batch, all levels flattened into L locations (fine level first).

    Attributes:
        cls_logits: ``[B, L, C]``; box_ltrb: ``[B, L, 4]`` pixels; ctr_logits: ``[B, L]``;
        controller: ``[B, L, P]`` dynamic-head parameters (``None`` when computed lazily at the
        detected locations, see :meth:`CondInst.controller_params`); features: ``[B, L, F]`` cls-tower output.
        locations: ``[L, 2]`` (x, y); strides: ``[L]``; levels: ``[L]`` long level index;
        sizes_of_interest: ``[L]`` relative-coordinate normaliser; ranges: ``[L, 2]`` size ranges.
        level_slices: slice of each level in L. mask_feats: ``[B, C_mask, H_m, W_m]`` at
        ``mask_stride``. image_size: padded (H, W) of the batch.
    """
    cls_logits: Tensor
    box_ltrb: Tensor
    ctr_logits: Tensor
    controller: Tensor
    features: Tensor
    locations: Tensor
    strides: Tensor
    levels: Tensor
    sizes_of_interest: Tensor
    ranges: Tensor
    level_slices: list
    mask_feats: Tensor
    mask_stride: int
    image_size: tuple
    box_feats: list | None = None  # per-level box-tower maps when ``controller`` is left lazy
    pyramid: dict | None = None    # the FPN maps the heads ran on ({"p3": [B, F, H_3, W_3], ...})


def flatten_levels(maps: list[Tensor]) -> Tensor:
    """Per-level ``[B, K, H_l, W_l]`` -> ``[B, sum_l H_l W_l, K]``."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


class CondInst(nn.Module):
    """CondInst instance segmenter; see the module docstring and :class:`CondInstConfig` for the
    meaning and paper default of every keyword argument."""

    def __init__(self, num_classes: int, backbone: str = "mobilenet_v2",
                 pretrained: str | os.PathLike | None = None, backbone_norm: str | None = None,
                 freeze_at: int | None = None, fpn_channels: int = 256, top_levels: int = 2,
                 num_convs: int = 4, size_boundaries: tuple = (64, 128, 256, 512),
                 center_radius: float | None = 1.5, box_activation: str = "relu",
                 prior_prob: float = 0.01, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 mask_in_features: tuple = ("p3", "p4", "p5"), mask_branch_channels: int = 128,
                 mask_branch_convs: int = 4, mask_channels: int = 8, dynamic_channels: int = 8,
                 dynamic_layers: int = 3, rel_coords: bool = True, mask_out_stride: int = 4,
                 max_proposals: int = 500, score_thr: float = 0.05, pre_nms_topk: int = 1000,
                 nms_thr: float = 0.6, max_detections: int = 100, mask_thr: float = 0.5,
                 mask_bce_weight: float = 0.0, finders=None):
        super().__init__()
        has_weights = not is_random_init(pretrained)
        norm = backbone_norm or ("frozen_bn" if has_weights else "bn")
        freeze_at = (2 if has_weights else 0) if freeze_at is None else freeze_at
        use_p2 = "p2" in mask_in_features
        self.backbone = Backbone(backbone, pretrained=pretrained, norm=norm, freeze_at=freeze_at,
                                 return_c2=use_p2, finders=finders)
        self.fpn = FPN(self.backbone.out_channels, fpn_channels, top_levels)
        self.head_features = [k for k in self.fpn.out_features if k != "p2"]
        strides = tuple(self.fpn.strides[k] for k in self.head_features)
        self.size_ranges = level_size_ranges(tuple(size_boundaries), len(strides))
        # relative-coordinate normaliser per level: its upper size bound (last level: 2x previous)
        self.sizes_of_interest = [float(b) for b in size_boundaries] + \
            [2.0 * float(size_boundaries[-1]) if size_boundaries else 64.0]
        self.dynamic = DynamicMaskHead(mask_channels, dynamic_channels, dynamic_layers, rel_coords)
        self.head = FCOSHead(fpn_channels, num_classes, strides, num_convs, self.dynamic.num_params,
                             prior_prob, box_activation)
        self.mask_branch = MaskBranch(fpn_channels, tuple(mask_in_features), mask_branch_channels,
                                      mask_branch_convs, mask_channels)
        if self.mask_branch.stride % mask_out_stride:
            raise ValueError(f"mask branch stride {self.mask_branch.stride} is not a multiple of "
                             f"mask_out_stride {mask_out_stride}")
        self.num_classes, self.strides = num_classes, strides
        self.center_radius, self.focal_alpha, self.focal_gamma = center_radius, focal_alpha, focal_gamma
        self.mask_out_stride, self.max_proposals = mask_out_stride, max_proposals
        self.score_thr, self.pre_nms_topk, self.nms_thr = score_thr, pre_nms_topk, nms_thr
        self.max_detections, self.mask_thr = max_detections, mask_thr
        self.mask_bce_weight = mask_bce_weight
        self.frozen_dense: FrozenByShape | None = None  # set by fuse_for_inference
        self._tables: dict = {}  # per-location constants by level shapes (_level_tables)

    @classmethod
    def from_config(cls, cfg: CondInstConfig, **overrides) -> "CondInst":
        """``CondInst(**vars(cfg), **overrides)``."""
        kwargs = dict(vars(cfg))
        kwargs.update(overrides)
        return cls(**kwargs)

    # ----------------------------------------------------------------------------------------
    def forward_heads(self, images: Tensor, lazy_controller: bool = False) -> HeadOutputs:
        """images ``[B, 3, H, W]`` normalised -> :class:`HeadOutputs` (``lazy_controller``: leave
        ``controller`` None and keep the box-tower maps for :meth:`controller_params`)."""
        size = tuple(images.shape[-2:])
        if self.frozen_dense is not None and not self.training and lazy_controller:
            return self.heads_from_dense(self.frozen_dense(images), size)
        return self.heads_from_features(self.backbone(images), size, lazy_controller)

    def heads_from_dense(self, dense: tuple, image_size: tuple[int, int]) -> HeadOutputs:
        """:meth:`dense_from_features`' tuple (e.g. from a frozen
        graph) -> :class:`HeadOutputs` with the controller left lazy."""
        pyramid, cls, box, ctr, feats, box_feats, mask_feats = dense
        head = {"cls": cls, "box": box, "ctr": ctr, "features": feats, "controller": [],
                "box_feats": box_feats}
        return self.heads_from_pyramid(pyramid, image_size, True, head, mask_feats)

    def fuse_for_inference(self) -> None:
        """At inference (``predict``), run the dense part (backbone, FPN, head towers, mask
        branch) as a TorchScript graph frozen per input shape
        (:class:`~tubelet.models.frozen.FrozenByShape`). One-way, like BatchNorm folding."""
        if self.head.controller is not None:
            self.frozen_dense = FrozenByShape(self, self._dense)

    def _dense(self, images: Tensor) -> tuple:
        """Backbone + :meth:`dense_from_features` (what the frozen graph computes)."""
        return self.dense_from_features(self.backbone(images))

    def dense_from_features(self, feats: dict[str, Tensor]) -> tuple:
        """FPN, head towers (lazy controller) and mask branch on backbone features ->
        ``(pyramid, cls, box, ctr, features, box_feats, mask_feats)`` (per-level lists as
        :meth:`FCOSHead.forward`'s), for :meth:`heads_from_dense`; IAI runs it after its
        association block."""
        pyramid = self.fpn(feats)
        head = self.head([pyramid[k] for k in self.head_features], with_controller=False)
        return (pyramid, head["cls"], head["box"], head["ctr"], head["features"],
                head["box_feats"], self.mask_branch(pyramid))

    def heads_from_features(self, feats: dict[str, Tensor], image_size: tuple[int, int],
                            lazy_controller: bool = False) -> HeadOutputs:
        """Backbone features ``{"c3": [B, C3, H/8, W/8], ...}`` of a padded ``image_size`` batch
        -> :class:`HeadOutputs` (the FPN, heads and mask branch). Methods that change the
        backbone features first (IAI's classification projector on C5) call this directly."""
        return self.heads_from_pyramid(self.fpn(feats), image_size, lazy_controller)

    def heads_from_pyramid(self, pyramid: dict[str, Tensor], image_size: tuple[int, int],
                           lazy_controller: bool = False, head: dict | None = None,
                           mask_feats: Tensor | None = None) -> HeadOutputs:
        """FPN maps ``{"p3": [B, F, H/8, W/8], ...}`` -> :class:`HeadOutputs` (``head`` /
        ``mask_feats``: the head's and mask branch's outputs when already computed)."""
        if head is None:
            head = self.head([pyramid[k] for k in self.head_features],
                             with_controller=not lazy_controller)
        ref = head["cls"][0]
        locs, strides, levels, soi, ranges, slices = self._level_tables(
            tuple(tuple(m.shape[-2:]) for m in head["cls"]), ref.device)
        start = slices[-1].stop
        if head["controller"]:
            controller = flatten_levels(head["controller"])
        elif head["box_feats"]:
            controller = None
        else:
            controller = ref.new_zeros(ref.shape[0], start, 0)
        return HeadOutputs(
            cls_logits=flatten_levels(head["cls"]), box_ltrb=flatten_levels(head["box"]),
            ctr_logits=flatten_levels(head["ctr"])[..., 0], controller=controller,
            features=flatten_levels(head["features"]), locations=locs, strides=strides,
            levels=levels, sizes_of_interest=soi, ranges=ranges, level_slices=slices,
            mask_feats=self.mask_branch(pyramid) if mask_feats is None else mask_feats,
            mask_stride=self.mask_branch.stride, image_size=tuple(image_size),
            box_feats=head["box_feats"] or None, pyramid=pyramid)

    def _level_tables(self, shapes: tuple, device) -> tuple:
        """:func:`level_tables` of these level shapes, cached per shape set (read-only)."""
        key = (shapes, str(device))
        if key not in self._tables:
            if len(self._tables) >= 8:
                self._tables.clear()
            self._tables[key] = level_tables(shapes, self.strides, self.sizes_of_interest,
                                             self.size_ranges, device)
        return self._tables[key]

    def controller_params(self, outputs: HeadOutputs, image_index: Tensor,
                          loc_index: Tensor) -> Tensor:
        """Dynamic-head parameters ``[N, P]`` at N (image, location) pairs."""
        if outputs.controller is not None:
            return outputs.controller[image_index, loc_index]
        level = outputs.levels[loc_index]
        starts = torch.tensor([sl.start for sl in outputs.level_slices], device=loc_index.device)
        widths = torch.tensor([f.shape[-1] for f in outputs.box_feats], device=loc_index.device)
        within = loc_index - starts[level]  # row-major index inside the level's map
        return self.head.controller_at(outputs.box_feats, image_index, level,
                                       within // widths[level], within % widths[level])

    def assign(self, outputs: HeadOutputs, targets: list[dict]) -> list[FCOSTargets]:
        """FCOS targets per image; ``targets[b]["boxes"]`` ``[M, 4]`` xyxy, ``["labels"]`` ``[M]``."""
        if len(targets) != outputs.cls_logits.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {outputs.cls_logits.shape[0]}")
        device = outputs.locations.device
        return [fcos_targets(outputs.locations, outputs.strides, outputs.ranges,
                             t["boxes"].to(device).reshape(-1, 4), t["labels"].to(device),
                             self.center_radius) for t in targets]

    def mask_logits(self, outputs: HeadOutputs, image_index: Tensor, loc_index: Tensor) -> Tensor:
        """Mask logits ``[N, 1, H_o, W_o]`` at ``mask_out_stride`` for N (image, location) pairs."""
        logits = self.dynamic(outputs.mask_feats, outputs.mask_stride,
                              self.controller_params(outputs, image_index, loc_index),
                              image_index,
                              outputs.locations[loc_index], outputs.sizes_of_interest[loc_index])
        factor = outputs.mask_stride // self.mask_out_stride
        if factor > 1:
            # align_corners=False maps output pixel centres (k s' + s'/2) onto input ones exactly
            logits = F.interpolate(logits, scale_factor=factor, mode="bilinear",
                                   align_corners=False)
        return logits

    def gt_masks_at_output_stride(self, masks: Tensor, size: tuple[int, int]) -> Tensor:
        """``[M, H, W]`` bool -> ``[M, h_o, w_o]`` float area fraction per stride-s cell."""
        s = self.mask_out_stride
        h_o, w_o = size
        m = masks.float()[:, : h_o * s, : w_o * s]
        m = F.pad(m, (0, w_o * s - m.shape[2], 0, h_o * s - m.shape[1]))
        return F.avg_pool2d(m[:, None], s)[:, 0]

    def compute_losses(self, outputs: HeadOutputs, assigned: list[FCOSTargets],
                       targets: list[dict]) -> dict[str, Tensor]:
        """The four CondInst losses (scalars) of a batch."""
        labels = torch.stack([a.labels for a in assigned])  # [B, L]
        pos = labels >= 0
        num_pos = max(int(pos.sum()), 1)
        onehot = torch.zeros_like(outputs.cls_logits)
        onehot[pos] = F.one_hot(labels[pos], self.num_classes).to(onehot.dtype)
        loss_cls = sigmoid_focal_loss(outputs.cls_logits, onehot, self.focal_alpha,
                                      self.focal_gamma) / num_pos
        box_t = torch.stack([a.box_targets for a in assigned])[pos]  # [P, 4]
        ctr_t = torch.stack([a.centerness for a in assigned])[pos]  # [P]
        loss_box = giou_loss(outputs.box_ltrb[pos], box_t, ctr_t) / ctr_t.sum().clamp(min=1e-6)
        loss_ctr = centerness_loss(outputs.ctr_logits[pos], ctr_t) / num_pos
        return {"loss_cls": loss_cls, "loss_box": loss_box, "loss_ctr": loss_ctr,
                "loss_mask": self._mask_loss(outputs, assigned, targets)}

    def _mask_loss(self, outputs: HeadOutputs, assigned: list[FCOSTargets],
                   targets: list[dict]) -> Tensor:
        img_idx, loc_idx, gt_masks = [], [], []
        h_m, w_m = outputs.mask_feats.shape[-2:]
        factor = outputs.mask_stride // self.mask_out_stride
        for b, (a, t) in enumerate(zip(assigned, targets)):
            locs = torch.nonzero(a.labels >= 0).flatten()
            if locs.numel() == 0:
                continue
            if 0 <= self.max_proposals < locs.numel():
                # the paper samples positives so the mask loss cost stays bounded per image
                locs = locs[torch.randperm(locs.numel(), device=locs.device)[: self.max_proposals]]
            masks = t["masks"].to(locs.device)
            if masks.shape[-2:] != outputs.image_size:
                raise ValueError(f"target masks of size {tuple(masks.shape[-2:])} for images "
                                 f"of size {outputs.image_size} (masks live in the padded frame)")
            small = self.gt_masks_at_output_stride(masks, (h_m * factor, w_m * factor))
            img_idx.append(torch.full_like(locs, b))
            loc_idx.append(locs)
            gt_masks.append(small[a.gt_index[locs]])
        if not img_idx:
            # keep the graph connected so every parameter still gets a (zero) gradient
            return outputs.mask_feats.sum() * 0 + outputs.controller.sum() * 0
        logits = self.mask_logits(outputs, torch.cat(img_idx), torch.cat(loc_idx))[:, 0]
        return mask_loss(logits, torch.cat(gt_masks), self.mask_bce_weight)

    def forward(self, images: Tensor, targets: list[dict] | None = None):
        """Training: ``targets`` per image ``{"boxes": [M, 4] xyxy pixels, "labels": [M] 0-based,
        "masks": [M, H, W] bool (padded frame), optional "ids": [M]}`` -> dict of losses.
        Evaluation: ``predict(images)``."""
        if self.training:
            if targets is None:
                raise ValueError("training forward needs targets")
            outputs = self.forward_heads(images)
            return self.compute_losses(outputs, self.assign(outputs, targets), targets)
        return self.predict(images)

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: list[tuple[int, int]] | None = None,
                output_sizes: list[tuple[int, int]] | None = None,
                mask_probs: bool = False,
                keep: Callable[[Tensor], Tensor] | None = None) -> list[Detections]:
        """Detections per image.

        Args:
            images: ``[B, 3, H, W]`` normalised, padded to a common size.
            image_sizes: valid (h, w) of each image inside the padding (default (H, W)).
            output_sizes: (H_out, W_out) to resize boxes and masks to, e.g. the original frame
                size before the dataset's resize (default: ``image_sizes``).
            mask_probs: return float mask probabilities instead of bool masks.
            keep: ``scores [N] -> bool [N]``, the candidates to keep, applied before any mask is
                computed (a tracker's entry gate: the masks of detections it would ignore are
                never made).

        Returns:
            B :class:`Detections`, masks ``[N, H_out, W_out]``.
        """
        was_training = self.training
        if was_training:
            self.eval()  # BatchNorm must use running statistics whatever mode the caller left
        try:
            outputs = self.forward_heads(images, lazy_controller=True)
        finally:
            if was_training:
                self.train(True)
        batch = images.shape[0]
        image_sizes = image_sizes or [tuple(images.shape[-2:])] * batch
        output_sizes = output_sizes or image_sizes
        results = []
        for b in range(batch):
            cand = select_candidates(outputs.cls_logits[b], outputs.ctr_logits[b],
                                     outputs.box_ltrb[b], outputs.locations, outputs.level_slices,
                                     image_sizes[b], self.score_thr, self.pre_nms_topk,
                                     self.nms_thr, self.max_detections)
            if keep is not None:
                cand = cand[keep(cand.scores)]
            loc = cand.loc_index
            logits = self.mask_logits(outputs, torch.full_like(loc, b), loc)
            masks = paste_masks(logits, self.mask_out_stride, image_sizes[b], output_sizes[b],
                                None if mask_probs else self.mask_thr)
            results.append(Detections(
                boxes=scale_boxes(cand.boxes, image_sizes[b], output_sizes[b]),
                scores=cand.scores, labels=cand.labels,
                class_probs=torch.sigmoid(outputs.cls_logits[b, loc]), masks=masks,
                features=outputs.features[b, loc],
                centerness=torch.sigmoid(outputs.ctr_logits[b, loc]),
                locations=outputs.locations[loc], levels=outputs.levels[loc]))
        return results
