"""Per-frame Mask R-CNN of Seq Mask R-CNN (He et al. 2017) on tubelet's backbone and FPN.

    images [B, 3, H, W] -> pad to x32 -> backbone C2-C5 -> FPN P2-P5 (+ "pool" = P5 subsampled x2)
    -> RPN on P2-pool (one anchor size per level, 3 ratios) -> proposals
    -> RoIAlign 7 on P2-P5 -> 2-layer MLP -> C + 1 softmax + class-specific box deltas
    -> RoIAlign 14 on P2-P5 -> 4 convs -> deconv x2 -> C + 1 masks 28 x 28

torchvision's detection blocks are used as library classes (``RegionProposalNetwork``,
``RoIHeads``, ``MultiScaleRoIAlign``, ``TwoMLPHead``, ``MaskRCNNHeads``, ...); the backbone and
FPN are tubelet's (:mod:`tubelet.models.backbones`, :mod:`tubelet.models.fpn`). Labels are 0-based
foreground classes at this module's edges; the box head's column 0 is the background, so class c
is column c + 1 (the convention of :func:`tubelet.ops.sequence_scores` too).

One backbone pass serves everything: :meth:`FrameMaskRCNN.forward` returns the frames'
:class:`FrameFeatures` (C2, C3, P2 for the Seq-Prop head) with the losses (training) or the
detections (eval). Lower-level steps: ``extract``, ``losses``, ``detect``, ``classify_boxes``
(sequence score), ``mask_probs_for_boxes`` (Seq-Prop memory masks on ground-truth boxes).

Test-time defaults (REFERENCE_NOTES §1): 200 RPN proposals before and after NMS, RPN NMS 0.7,
score > 0.2, per-class NMS 0.5, at most O = 10 detections, mask threshold 0.5, RoIAlign 7 / 14.
torchvision's RPN applies ``rpn_pre_nms_test`` per pyramid level and ``rpn_post_nms_test`` per
image, as the old MMDetection's ``nms_pre`` / ``max_num`` did.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, paste_masks_in_image
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign

from tubelet.models.backbones import Backbone
from tubelet.models.fpn import FPN
from tubelet.models.seq_mask_rcnn.outputs import FrameFeatures, FrameOutputs, RCNNDetections
from tubelet.models.weights import is_random_init

ROI_LEVELS = ["p2", "p3", "p4", "p5"]  # RoIAlign levels; the RPN also reads "pool"
_LOSS_NAMES = {"loss_objectness": "loss_rpn_cls", "loss_rpn_box_reg": "loss_rpn_box",
               "loss_classifier": "loss_cls", "loss_box_reg": "loss_box", "loss_mask": "loss_mask"}


@dataclass
class MaskRCNNConfig:
    """Constructor arguments of :class:`FrameMaskRCNN`, one per field (YAML presets map here)."""
    num_classes: int = 40                 # C foreground classes (40 for YouTube-VIS 2019)
    backbone: str = "resnet50"            # resnet50 (paper) | resnet18 | mobilenet_v2 (CPU)
    pretrained: str | None = "imagenet"   # None/"none" random | "imagenet" | path to a .pth
    backbone_norm: str | None = None      # frozen_bn | bn; None: frozen_bn if pretrained else bn
    freeze_at: int | None = None          # freeze stages 1..k; None: 2 if pretrained else 0
    fpn_channels: int = 256               # F, width of P2-P5 and the RPN / RoI heads' input
    size_divisible: int = 32              # inputs padded (bottom / right) to a multiple of this
    anchor_sizes: tuple = (32, 64, 128, 256, 512)  # one anchor size per level P2..P5, pool
    aspect_ratios: tuple = (0.5, 1.0, 2.0)  # anchor ratios h / w at every level
    rpn_fg_iou: float = 0.7               # RPN positive anchor IoU
    rpn_bg_iou: float = 0.3               # RPN negative anchor IoU
    rpn_batch_per_image: int = 256        # anchors sampled per image for the RPN loss
    rpn_positive_fraction: float = 0.5    # of which at most this fraction positive
    rpn_pre_nms_train: int = 2000         # training: proposals per level before NMS
    rpn_post_nms_train: int = 2000        # training: proposals per image after NMS
    rpn_pre_nms_test: int = 200           # test: per level before NMS (notes: 200)
    rpn_post_nms_test: int = 200          # test: per image after NMS (notes: 200)
    rpn_nms_thr: float = 0.7              # RPN NMS IoU (notes: 0.7)
    box_roi_size: int = 7                 # RoIAlign output for the box head (notes: 7)
    mask_roi_size: int = 14               # RoIAlign output for the mask head (notes: 14)
    sampling_ratio: int = 2               # RoIAlign samples per bin side
    box_head_dim: int = 1024              # width of the 2 fc layers of the box head
    mask_head_channels: int = 256         # width of the mask head convs and deconv
    mask_head_convs: int = 4              # 3x3 convs of the mask head
    roi_fg_iou: float = 0.5               # proposal positive IoU for the box / mask heads
    roi_bg_iou: float = 0.5               # proposal negative IoU
    roi_batch_per_image: int = 512        # proposals sampled per image for the box loss
    roi_positive_fraction: float = 0.25   # of which at most this fraction positive
    score_thr: float = 0.2                # test: class probability threshold (notes: 0.2)
    nms_thr: float = 0.5                  # test: per-class box NMS IoU (notes: 0.5)
    max_detections: int = 10              # test: O, detections kept per frame (notes: 10)
    mask_thr: float = 0.5                 # test: mask probability threshold (notes: 0.5)

    @classmethod
    def paper(cls, **overrides) -> "MaskRCNNConfig":
        """ResNet-50 + FPN 256, the notes' test-time defaults. The paper starts from a COCO
        Mask R-CNN; offline, ImageNet weights are the closest start available."""
        return replace(cls(), **overrides)

    @classmethod
    def cpu(cls, **overrides) -> "MaskRCNNConfig":
        """MobileNetV2 + FPN 64 for 2 CPU cores at 192x320 synthetic frames (10 classes, objects
        10-80 px): anchors halved (16-256), narrow heads, fewer sampled proposals."""
        return replace(cls(
            num_classes=10, backbone="mobilenet_v2", fpn_channels=64,
            anchor_sizes=(16, 32, 64, 128, 256), rpn_pre_nms_train=600, rpn_post_nms_train=300,
            box_head_dim=256, mask_head_channels=64, roi_batch_per_image=128), **overrides)


class FrameMaskRCNN(nn.Module):
    """Mask R-CNN on one batch of frames; see the module docstring and :class:`MaskRCNNConfig`
    for the meaning and paper default of every keyword argument."""

    def __init__(self, num_classes: int = 40, backbone: str = "resnet50",
                 pretrained: str | os.PathLike | None = "imagenet",
                 backbone_norm: str | None = None, freeze_at: int | None = None,
                 fpn_channels: int = 256, size_divisible: int = 32,
                 anchor_sizes: tuple = (32, 64, 128, 256, 512),
                 aspect_ratios: tuple = (0.5, 1.0, 2.0), rpn_fg_iou: float = 0.7,
                 rpn_bg_iou: float = 0.3, rpn_batch_per_image: int = 256,
                 rpn_positive_fraction: float = 0.5, rpn_pre_nms_train: int = 2000,
                 rpn_post_nms_train: int = 2000, rpn_pre_nms_test: int = 200,
                 rpn_post_nms_test: int = 200, rpn_nms_thr: float = 0.7,
                 box_roi_size: int = 7, mask_roi_size: int = 14, sampling_ratio: int = 2,
                 box_head_dim: int = 1024, mask_head_channels: int = 256,
                 mask_head_convs: int = 4, roi_fg_iou: float = 0.5, roi_bg_iou: float = 0.5,
                 roi_batch_per_image: int = 512, roi_positive_fraction: float = 0.25,
                 score_thr: float = 0.2, nms_thr: float = 0.5, max_detections: int = 10,
                 mask_thr: float = 0.5, finders=None):
        super().__init__()
        if len(anchor_sizes) != len(ROI_LEVELS) + 1:
            raise ValueError(f"anchor_sizes needs one size per level P2-P5 + pool, got "
                             f"{anchor_sizes}")
        has_weights = not is_random_init(pretrained)
        norm = backbone_norm or ("frozen_bn" if has_weights else "bn")
        freeze_at = (2 if has_weights else 0) if freeze_at is None else freeze_at
        self.num_classes, self.size_divisible = num_classes, size_divisible
        self.mask_thr = mask_thr
        self.backbone = Backbone(backbone, pretrained=pretrained, norm=norm, freeze_at=freeze_at,
                                 return_c2=True, finders=finders)
        # Mask R-CNN's FPN: no conv levels on top; "pool" is added in extract() (max-pool, k1 s2)
        self.fpn = FPN(self.backbone.out_channels, fpn_channels, top_levels=0)
        anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes),
                                  (tuple(float(r) for r in aspect_ratios),) * len(anchor_sizes))
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(fpn_channels, len(aspect_ratios)), fg_iou_thresh=rpn_fg_iou,
            bg_iou_thresh=rpn_bg_iou, batch_size_per_image=rpn_batch_per_image,
            positive_fraction=rpn_positive_fraction,
            pre_nms_top_n={"training": rpn_pre_nms_train, "testing": rpn_pre_nms_test},
            post_nms_top_n={"training": rpn_post_nms_train, "testing": rpn_post_nms_test},
            nms_thresh=rpn_nms_thr)
        self.roi_heads = RoIHeads(
            box_roi_pool=MultiScaleRoIAlign(ROI_LEVELS, box_roi_size, sampling_ratio),
            box_head=TwoMLPHead(fpn_channels * box_roi_size ** 2, box_head_dim),
            box_predictor=FastRCNNPredictor(box_head_dim, num_classes + 1),
            fg_iou_thresh=roi_fg_iou, bg_iou_thresh=roi_bg_iou,
            batch_size_per_image=roi_batch_per_image, positive_fraction=roi_positive_fraction,
            bbox_reg_weights=None,  # (10, 10, 5, 5) = the released target_stds (0.1, 0.1, 0.2, 0.2)
            score_thresh=score_thr, nms_thresh=nms_thr, detections_per_img=max_detections,
            mask_roi_pool=MultiScaleRoIAlign(ROI_LEVELS, mask_roi_size, sampling_ratio),
            mask_head=MaskRCNNHeads(fpn_channels, [mask_head_channels] * mask_head_convs, 1),
            mask_predictor=MaskRCNNPredictor(mask_head_channels, mask_head_channels,
                                             num_classes + 1))

    @classmethod
    def from_config(cls, cfg: MaskRCNNConfig, **overrides) -> "FrameMaskRCNN":
        return cls(**{**vars(cfg), **overrides})

    # ------------------------------------------------------------------ features
    def extract(self, images: Tensor,
                image_sizes: list[tuple[int, int]] | None = None) -> FrameFeatures:
        """Backbone + FPN: images ``[B, 3, H, W]`` (ImageNet-normalised) -> :class:`FrameFeatures`
        of the batch padded (zeros, bottom / right) to a multiple of ``size_divisible``.

        ``image_sizes``: valid (h, w) of each image (default (H, W)); boxes and masks live there.
        """
        h, w = images.shape[-2:]
        d = self.size_divisible
        hp, wp = math.ceil(h / d) * d, math.ceil(w / d) * d
        if (hp, wp) != (h, w):
            images = F.pad(images, (0, wp - w, 0, hp - h))
        feats = self.backbone(images)
        pyramid = self.fpn(feats)  # {"p2", "p3", "p4", "p5"}
        pyramid["pool"] = F.max_pool2d(pyramid["p5"], kernel_size=1, stride=2)  # [B, F, H/64, W/64]
        sizes = [tuple(int(v) for v in s) for s in (image_sizes or [(h, w)] * images.shape[0])]
        return FrameFeatures(c2=feats["c2"], c3=feats["c3"], pyramid=pyramid, image_sizes=sizes,
                             padded_size=(hp, wp))

    def _image_list(self, feats: FrameFeatures) -> ImageList:
        # the anchor generator only reads the padded size from the tensor, never its values
        p2 = feats.p2
        dummy = p2.new_empty((len(feats), 0) + tuple(feats.padded_size))
        return ImageList(dummy, list(feats.image_sizes))

    @contextmanager
    def _heads_mode(self, training: bool):
        """Switch the RPN and RoI heads between sampling + losses (training) and NMS + top-k
        (eval) whatever mode the model is in: they hold no BatchNorm or dropout."""
        before = (self.rpn.training, self.roi_heads.training)
        self.rpn.train(training)
        self.roi_heads.train(training)
        try:
            yield
        finally:
            self.rpn.train(before[0])
            self.roi_heads.train(before[1])

    # ------------------------------------------------------------------ training
    def losses(self, feats: FrameFeatures, targets: list[dict]) -> dict[str, Tensor]:
        """RPN, box and mask losses of Mask R-CNN (weights 1; the trainer sums).

        ``targets`` per frame: ``{"boxes": [M, 4] xyxy pixels, "labels": [M] 0-based,
        "masks": [M, h, w] bool}`` (the CondInst target format). Returns ``{"loss_rpn_cls",
        "loss_rpn_box", "loss_cls", "loss_box", "loss_mask"}``.
        """
        if len(targets) != len(feats):
            raise ValueError(f"{len(targets)} targets for {len(feats)} frames")
        device = feats.p2.device
        tv_targets = [{"boxes": t["boxes"].to(device, torch.float32).reshape(-1, 4),
                       "labels": t["labels"].to(device, torch.int64) + 1,  # 0 = background
                       "masks": t["masks"].to(device)} for t in targets]
        levels = feats.pyramid
        with self._heads_mode(True):
            proposals, rpn_losses = self.rpn(self._image_list(feats), levels, tv_targets)
            _, roi_losses = self.roi_heads({k: levels[k] for k in ROI_LEVELS}, proposals,
                                           list(feats.image_sizes), tv_targets)
        return {_LOSS_NAMES[k]: v for k, v in {**rpn_losses, **roi_losses}.items()}

    # ------------------------------------------------------------------ inference
    def detect(self, feats: FrameFeatures, mask_probs: bool = False) -> list[RCNNDetections]:
        """Detections of every frame: at most ``max_detections`` with score > ``score_thr``
        after per-class NMS; masks pasted on the valid frame, thresholded at ``mask_thr``
        unless ``mask_probs``."""
        levels = feats.pyramid
        with self._heads_mode(False):
            proposals, _ = self.rpn(self._image_list(feats), levels)
            results, _ = self.roi_heads({k: levels[k] for k in ROI_LEVELS}, proposals,
                                        list(feats.image_sizes))
        out = []
        for r, size in zip(results, feats.image_sizes):
            masks = paste_masks_in_image(r["masks"], r["boxes"], size, padding=1)[:, 0]  # [N, h, w]
            out.append(RCNNDetections(boxes=r["boxes"], scores=r["scores"],
                                      labels=r["labels"] - 1,
                                      masks=masks if mask_probs else masks > self.mask_thr))
        return out

    def classify_boxes(self, feats: FrameFeatures, boxes: list[Tensor]) -> list[Tensor]:
        """Box-head class distribution of given boxes (the sequence score's per-frame term).

        Args:
            feats: features of B frames.
            boxes: B tensors ``[N_b, 4]`` (x1, y1, x2, y2) pixels of the valid frame, e.g.
                :func:`~tubelet.models.seq_mask_rcnn.boxes.mask_boxes` of propagated masks.
        Returns:
            B tensors ``[N_b, C + 1]``: softmax over background (column 0) and the C classes.
        """
        heads = self.roi_heads
        levels = {k: feats.pyramid[k] for k in ROI_LEVELS}
        boxes = [b.to(feats.p2.device, torch.float32).reshape(-1, 4) for b in boxes]
        x = heads.box_roi_pool(levels, boxes, list(feats.image_sizes))  # [sum N_b, F, 7, 7]
        logits, _ = heads.box_predictor(heads.box_head(x))  # [sum N_b, C + 1]
        return list(torch.softmax(logits, dim=-1).split([len(b) for b in boxes]))

    def mask_probs_for_boxes(self, feats: FrameFeatures, boxes: list[Tensor],
                             labels: list[Tensor]) -> list[Tensor]:
        """Mask-head probabilities for given boxes and classes, pasted on the valid frame.

        The Seq-Prop training's memory masks come from here on the ground-truth boxes of the
        reference frame (notes §1; the caller detaches them). Gradients flow otherwise.

        Args:
            boxes: B tensors ``[N_b, 4]`` xyxy pixels; labels: B tensors ``[N_b]`` 0-based.
        Returns:
            B tensors ``[N_b, h_b, w_b]`` of probabilities (the mask head's channel label + 1).
        """
        heads = self.roi_heads
        levels = {k: feats.pyramid[k] for k in ROI_LEVELS}
        boxes = [b.to(feats.p2.device, torch.float32).reshape(-1, 4) for b in boxes]
        x = heads.mask_roi_pool(levels, boxes, list(feats.image_sizes))  # [sum N_b, F, 14, 14]
        logits = heads.mask_predictor(heads.mask_head(x))  # [sum N_b, C + 1, 28, 28]
        cls = torch.cat([lab.to(logits.device, torch.int64) for lab in labels]) + 1
        probs = logits[torch.arange(len(cls), device=logits.device), cls].sigmoid()  # [N, 28, 28]
        out = []
        for b, p, size in zip(boxes, probs.split([len(b) for b in boxes]), feats.image_sizes):
            out.append(paste_masks_in_image(p[:, None], b, size, padding=1)[:, 0])
        return out

    # ------------------------------------------------------------------ both
    def forward(self, images: Tensor, targets: list[dict] | None = None,
                image_sizes: list[tuple[int, int]] | None = None,
                mask_probs: bool = False) -> FrameOutputs:
        """One backbone pass over B frames ``[B, 3, H, W]``: training (``self.training``) ->
        features + losses (``targets`` required, see :meth:`losses`); eval -> features +
        detections (see :meth:`detect`)."""
        feats = self.extract(images, image_sizes)
        if self.training:
            if targets is None:
                raise ValueError("training forward needs targets")
            return FrameOutputs(features=feats, losses=self.losses(feats, targets))
        return FrameOutputs(features=feats, detections=self.detect(feats, mask_probs))
