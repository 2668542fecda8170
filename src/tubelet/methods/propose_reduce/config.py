"""Configuration of ``propose-reduce``; YAML presets under ``configs/`` map onto it 1:1.

Defaults: the Propose-Reduce papers and REFERENCE_NOTES §1 (K = 5 key frames, key-frame mask NMS
0.2, memory written every 5 frames, agnostic sequence NMS 0.9 + category-aware soft-NMS σ 0.5,
output threshold 0.001), on the CPU-sized Mask R-CNN / Seq-Prop head of
:mod:`tubelet.models.seq_mask_rcnn`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from tubelet.models.seq_mask_rcnn import MaskRCNNConfig, SeqPropConfig
from tubelet.ops.reduce import ReduceConfig

#: reduction modes (Table 1c of the 2021 category-aware paper, plus "none"):
#: "none" every sequence proposal becomes records; "agnostic" hard sequence NMS alone (the 2021
#: ICCV paper, θ 0.5); "agnostic+aware" hard NMS (θ 0.9) then category-aware soft-NMS (default,
#: the challenge paper); "aware" the category-aware soft-NMS alone.
REDUCTIONS = ("none", "agnostic", "agnostic+aware", "aware")
#: sources of the reference frame's memory masks in training (``prop_memory``)
PROP_MEMORIES = ("mask_head", "gt")


def _cpu_rcnn() -> MaskRCNNConfig:
    # MobileNetV2 + FPN 64 for 2 CPU cores (see MaskRCNNConfig.cpu); random init by default,
    # presets choose ImageNet weights.
    return MaskRCNNConfig.cpu(pretrained=None)


@dataclass
class ProposeReduceConfig:
    """Seq Mask R-CNN (Mask R-CNN + Seq-Prop head) and its propose / reduce inference.

    ``seq_prop.in_channels`` / ``c2_channels`` / ``c3_channels`` are taken from the built Mask
    R-CNN (FPN width, backbone C2 / C3 widths); the YAML values of those three are ignored.
    """
    model: MaskRCNNConfig = field(default_factory=_cpu_rcnn)      # per-frame Mask R-CNN
    seq_prop: SeqPropConfig = field(default_factory=SeqPropConfig.cpu)  # propagation head
    # ---- training: (reference, current) frame pairs = ClipDataset clips of num_frames 2
    max_objects: int = 5           # objects propagated per pair (notes §1: at most 5)
    prop_loss_weight: float = 1.0  # weight of the soft IoU loss (released code: 1)
    prop_ce_weight: float = 0.0    # weight of an auxiliary pixel cross-entropy on the soft
    #                                aggregation (STM's loss, in log space: no clamp, so a
    #                                saturated head still learns); 0 = the released code's loss
    prop_memory: str = "mask_head" # the reference memory masks: "mask_head" = the mask head on
    #                                the GT boxes, detached (released code, notes §1); "gt" = the
    #                                GT masks (a from-scratch option: the head then learns from
    #                                clean memories while the mask head is still poor)
    ref_det_loss: bool = False     # also take the detector losses on the reference frame (its
    #                                backbone pass is paid anyway); False = current frame only,
    #                                as in the released code
    # ---- inference: sequence proposals
    num_keys: int = 5              # K key frames at int(k (T-1)/(K-1)) (paper: 5)
    key_nms_thr: float = 0.2       # key-frame greedy mask NMS: drop IoU >= this (notes: 0.2)
    prop_mask_thr: float = 0.5     # propagated probability >= this is the mask (notes: 0.5)
    # ---- inference: sequence reduction (tubelet.ops.reduce)
    reduction: str = "agnostic+aware"  # one of REDUCTIONS
    agnostic_iou_thr: float | None = None  # θ of the agnostic NMS; None: 0.9 before the
    #                                         category-aware step, 0.5 alone (papers)
    agnostic_stop_thr: float | None = 0.05  # agnostic NMS stops below this score (released)
    aware_sigma: float = 0.5       # Gaussian soft-NMS σ: s *= exp(-IoU^2 / σ) (released: 0.5)
    aware_score_thr: float = 1e-3  # soft-NMS stops below / does not decay scores under this
    max_per_class: int = 100       # soft-NMS keeps at most this many sequences per class
    output_thr: float | None = None  # a record needs score > this; None: 0.001 with the
    #                                   category-aware step, 0.05 without (notes §1)
    # ---- input
    test_short_side: int = 192     # inference resize: shortest side (paper: 360 of 640x360)
    test_max_size: int = 640       # inference resize: cap on the longest side
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet normalisation
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def reduce_config(cfg: ProposeReduceConfig) -> ReduceConfig:
    """The :class:`~tubelet.ops.reduce.ReduceConfig` of ``cfg.reduction``.

    A step that is off is disabled inside ``reduce_sequences`` rather than re-implemented: no
    agnostic NMS = θ of +inf (no IoU reaches it) and no score stop, so every sequence survives.
    """
    if cfg.reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {cfg.reduction!r}")
    aware = cfg.reduction in ("agnostic+aware", "aware")
    agnostic = cfg.reduction in ("agnostic", "agnostic+aware")
    return ReduceConfig(aware=aware,
                        agnostic_iou=cfg.agnostic_iou_thr if agnostic else math.inf,
                        agnostic_score_stop=cfg.agnostic_stop_thr if agnostic else None,
                        method="gaussian", sigma=cfg.aware_sigma,
                        aware_score_thr=cfg.aware_score_thr, max_per_class=cfg.max_per_class,
                        output_thr=cfg.output_thr)
