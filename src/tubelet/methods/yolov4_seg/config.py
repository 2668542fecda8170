"""Configuration of ``yolov4-seg``; YAML presets under ``configs/`` map onto it 1:1.

Presets: ``yolov4_seg_tiny`` (smoke test), ``_bench`` (synthetic bench split, CPU), ``_davis``
(class-agnostic DAVIS 2016, CPU), ``_paper`` (full CSPDarknet53-Mish, 416, GPU).
Ablations flip one key each: ``model.greedy.class_weight=0`` (tracker class term off),
``model.p2=false`` (no stride-4 level), ``model.model.balance_losses=false`` (fixed weights),
``model.tracker=naive`` (IoU-argmax association instead of Best Friend / Lonely Best Friend).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tubelet.methods.track_by_detect import OnlineConfig
from tubelet.methods.yolov4_seg.data import YOLOAugConfig
from tubelet.models.yolov4.config import YOLOv4SegConfig


@dataclass
class YOLOv4SegMethodConfig(OnlineConfig):
    """OnlineConfig (tracker choice and its configs, normalisation) + these.

    The tracker defaults are the paper's (REFERENCE_NOTES §2): ``greedy.score_thr`` 0.6 (the
    detections that enter), output > 3 valid frames, mean confidence > 0.6, majority category.
    ``test_short_side`` / ``test_max_size`` are not used: frames are letterboxed to
    ``model.input_size`` instead.
    """
    # the detector; default = its CPU preset (width 0.25, depth 0.33, 256 input, 10 classes)
    model: YOLOv4SegConfig = field(default_factory=lambda: YOLOv4SegConfig.cpu(num_classes=10))
    p2: bool = True                  # the stride-4 level (paper); False drops model.neck_channels[0]
    # k-means the anchors on the training set when training starts (only when model.anchors is
    # None; the result is a buffer of the model, saved and loaded with the weights)
    kmeans_anchors: bool = True
    kmeans_max_boxes: int = 20000    # boxes subsampled (seeded) for k-means, to bound its time
    # training augmentation (flip, crop, colour jitter); data.clip.samples_per_video sets the
    # frames drawn per video and epoch, the rest of data.clip is unused (single frames, letterbox)
    aug: YOLOAugConfig = field(default_factory=YOLOAugConfig)
    # inference letterbox: False = the S x S square (paper); True = pad only up to a multiple of
    # 32 (the coarsest stride), e.g. 160 x 256 instead of 256 x 256 for a 192 x 320 frame: the
    # same scale, fewer padded pixels to convolve (YOLOv5's "rectangular inference")
    test_rect: bool = False

    def detector_config(self) -> YOLOv4SegConfig:
        """The detector's config with the ``p2`` switch applied."""
        if self.p2:
            return self.model
        widths = tuple(self.model.neck_channels)
        if len(widths) != 4:
            return self.model  # already n3..n5
        return YOLOv4SegConfig(**{**vars(self.model), "neck_channels": widths[1:]})
