"""Configuration of ``contrastive-online``; YAML presets under ``configs/`` map onto it 1:1.

Presets: ``contrastive_online_tiny`` (smoke test), ``_bench`` (synthetic bench split, CPU),
``_davis`` (class-agnostic DAVIS 2016, CPU), ``_paper`` (ResNet-50, the paper's detector and
schedule, GPU). OVIS thresholds (REFERENCE_NOTES §4): ``model.memory.birth_thr=0.3
model.memory.mask_nms_thr=0.3`` (see the comment in ``contrastive_online_paper.yaml``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tubelet.methods.track_by_detect import OnlineConfig
from tubelet.models.deformable_detr import CriterionConfig, DeformableDETRConfig, SelectionConfig
from tubelet.trackers import PerFrameConfig


@dataclass
class ContrastiveOnlineConfig(OnlineConfig):
    """OnlineConfig (tracker choice and its configs, test resize, normalisation) + these."""
    tracker: str = "memory"          # memory (the paper) | greedy (IoU only) | none (per frame)
    # the detector; default = the CPU preset of DeformableDETRConfig (10 synthetic classes)
    none: PerFrameConfig = field(default_factory=PerFrameConfig)  # the "none" tracker's config
    model: DeformableDETRConfig = field(
        default_factory=lambda: DeformableDETRConfig.cpu(num_classes=10))
    criterion: CriterionConfig = field(default_factory=CriterionConfig)   # set loss (§4 weights)
    selection: SelectionConfig = field(default_factory=SelectionConfig)   # dynamic-k pos / neg
    contrast_weight: float = 2.0     # weight of the contrastive loss, Eq. 2 (paper: 2)
    aux_weight: float = 3.0          # weight of the auxiliary cosine loss (paper: 3)
    random_key: bool = True          # coin flip: key = frame 0 or 1 of the clip (else always 0)
    aux_max_neg_per_pos: int = 10    # auxiliary loss: negatives subsampled to this per positive
    # queries whose max class probability is > score_thr reach the tracker, the top-1 when none
    # does (the released code's per-frame rule); masks are decoded for these queries only. The
    # memory tracker repeats the test with memory.score_thr (equal by default: then a no-op).
    score_thr: float = 0.1
    mask_thr: float = 0.5            # mask probability threshold at the output resolution
    test_short_side: int = 192       # inference shortest side (paper: 480; CPU bench: 192)
