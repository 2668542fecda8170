"""Configuration of :class:`~tubelet.models.yolov4.detector.YOLOv4Seg`, with the paper's and a CPU
preset. Defaults follow the paper and REFERENCE_NOTES §2 (416 input, 16 anchors over 4 levels,
confidence 0.5, NMS 0.3, at most 50 proposals); the rest is YOLOv4's or Mask R-CNN's where the
paper is silent (each field says which)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class YOLOv4SegConfig:
    """Constructor arguments of ``YOLOv4Seg``, one per field."""
    num_classes: int = 40                 # C classes (40 for YouTube-VIS 2021)
    input_size: int = 416                 # letterbox square side (416 paper)
    backbone: str = "cspdarknet53"        # cspdarknet53 (paper) | mobilenet_v2 | resnet18 | resnet50
    pretrained: str | None = None         # torchvision backbones only: None | "imagenet" | .pth path
    width: float = 1.0                    # CSPDarknet53 channel multiplier (1.0 paper)
    depth: float = 1.0                    # CSPDarknet53 residual-block multiplier (1.0 paper)
    backbone_act: str = "mish"            # CSPDarknet53 activation (Mish, paper; leaky on CPU)
    neck_channels: tuple = (64, 128, 256, 512)  # n2..n5 widths (YOLOv4's 128/256/512 + 64 at p2);
                                          # 3 widths = n3..n5 only (the "p2 off" ablation)
    neck_block_convs: int = 5             # alternating 1x1/3x3 convs per neck block (5 YOLOv4)
    neck_act: str = "leaky"               # neck / head activation (leaky 0.1, YOLOv4)
    spp_kernels: tuple = (5, 9, 13)       # SPP max-pool sizes (YOLOv4)
    anchors_per_level: int = 4            # A; 16 anchors over 4 levels (paper)
    anchors: tuple | None = None          # [L][A][2] (w, h) input pixels (k-means); None: placeholders
    embed_channels: int = 256             # E: per-level embedding / mask-subnet width (256 Mask R-CNN)
    pool_size: int = 14                   # RoIAlign grid P (14 Mask R-CNN); masks are 2P x 2P
    sampling_ratio: int = 2               # RoIAlign bilinear samples per bin side (2 Mask R-CNN)
    mask_convs: int = 4                   # mask-subnet 3x3 convs (4 Mask R-CNN)
    fusion: str = "max"                   # adaptive feature pooling fusion: max (PANet) | sum
    prior_prob: float = 0.01              # initial confidence (bias init)
    class_at: str = "mask_centroid"       # class target cell: mask_centroid (paper) | box_center
    anchor_iou_thr: float | None = 0.213  # extra positive anchors above this shape IoU (YOLOv4 cfg)
    ignore_thr: float = 0.7               # no confidence loss where prediction IoU >= this (YOLOv4 cfg)
    smooth_l1_beta: float = 1.0           # smooth L1 transition point (Fast R-CNN)
    balance_losses: bool = True           # Eq. 1 automatic balancing; False: fixed_loss_weights
    fixed_loss_weights: tuple = (1.0, 1.0, 1.0, 1.0)  # box, conf, cls, mask (ablation only)
    train_conf_thr: float = 0.5           # training mask proposals: predictions above this ...
    train_max_proposals: int = 50         # ... at most this many per image, plus the GT boxes
    mask_match_thr: float = 0.5           # proposal <-> ground truth IoU for a mask target
    conf_thr: float = 0.5                 # inference confidence (notes §2)
    nms_thr: float = 0.3                  # inference NMS IoU, per level then across (notes §2)
    max_proposals: int = 50               # inference proposals kept (notes §2)
    pre_nms_topk: int = 1000              # candidates per level entering NMS
    class_aware_nms: bool = False         # NMS per class (False: class-agnostic proposals)
    mask_thr: float = 0.5                 # mask probability threshold

    @classmethod
    def paper(cls, **overrides) -> "YOLOv4SegConfig":
        """The paper's detector: full CSPDarknet53 (width = depth = 1), 416 input, 16 anchors."""
        return cls(**overrides)

    @classmethod
    def cpu(cls, **overrides) -> "YOLOv4SegConfig":
        """A small variant for 2 CPU cores: width 0.25, depth 0.33, 256 input, narrow neck/heads,
        leaky ReLU instead of Mish in the backbone (as YOLOv4-tiny): PyTorch's CPU Mish was
        measured 8x slower than SiLU and 40x slower than leaky ReLU per element, a third of the
        whole forward at 192 x 320 with Mish."""
        kw = dict(input_size=256, width=0.25, depth=0.33, backbone_act="leaky",
                  neck_channels=(16, 32, 64, 128), neck_block_convs=3, embed_channels=32,
                  mask_convs=2)
        kw.update(overrides)
        return cls(**kw)
