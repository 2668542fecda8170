"""YOLOv4+1seg per frame + the greedy Best Friend / Lonely Best Friend tracker (Rossetti et al. 2021).

Training (``losses = method(batch)``): batches of single letterboxed frames
(:class:`~tubelet.methods.yolov4_seg.data.LetterboxFrameDataset`) through
:class:`~tubelet.models.yolov4.YOLOv4Seg`, whose four losses are balanced by Eq. 1 (or fixed
weights, ``model.balance_losses=false``). Before the first step :meth:`YOLOv4SegMethod.train_dataset`
k-means the anchors on the training set's box sizes in the letterboxed input (paper §3.2) and
stores them in the detector's ``anchors`` buffer, so they travel with the weights.

Inference (``predict_video``, online): each frame is letterboxed to ``model.input_size``
(:meth:`preprocess`), detected (confidence 0.5, NMS 0.3 per level then across levels, at most
50, notes §2), its boxes and masks mapped back to the frame, and handed to the tracker: ``greedy``
(paper; detections with confidence >= 0.6 enter, output tracks with > 3 valid frames and mean
confidence > 0.6, majority category) or ``naive`` (IoU argmax baseline).
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch

from tubelet.methods.registry import register_method
from tubelet.methods.track_by_detect import TrackByDetect
from tubelet.methods.yolov4_seg.config import YOLOv4SegMethodConfig
from tubelet.methods.yolov4_seg.data import PAD_VALUE, LetterboxFrameDataset, training_box_sizes
from tubelet.models.yolov4.anchors import level_anchors
from tubelet.models.yolov4.detector import YOLOv4Seg
from tubelet.models.yolov4.letterbox import Letterbox, letterbox_images, letterbox_params
from tubelet.structures import FrameInstances

log = logging.getLogger(__name__)


class YOLOv4SegMethod(TrackByDetect):
    """``yolov4-seg``: see the module docstring; ``cfg`` is a :class:`YOLOv4SegMethodConfig`."""

    cfg: YOLOv4SegMethodConfig

    def __init__(self, cfg: YOLOv4SegMethodConfig):
        super().__init__(cfg)  # checks cfg.tracker against provided_fields()
        self.detector = YOLOv4Seg(cfg.detector_config())
        self.set_categories([(i + 1, f"class{i + 1}") for i in range(cfg.model.num_classes)])

    def provided_fields(self) -> set[str]:
        return {"class_probs", "boxes"}

    # ------------------------------------------------------------------------------ training
    def train_dataset(self, gt, image_root: str, data_cfg, seed: int) -> LetterboxFrameDataset:
        """Single letterboxed frames; first, k-means anchors on ``gt`` (see :meth:`fit_anchors`)."""
        if self.cfg.kmeans_anchors and self.cfg.model.anchors is None:
            self.fit_anchors(gt, seed)
        return LetterboxFrameDataset(gt, image_root, self.cfg.model.input_size, self.cfg.aug,
                                     data_cfg.clip.samples_per_video, seed)

    def fit_anchors(self, gt, seed: int) -> torch.Tensor | None:
        """k-means (IoU distance) anchors ``[L, A, 2]`` of ``gt``'s boxes in the letterboxed input,
        written into the detector's ``anchors`` buffer; deterministic in ``seed`` (at most
        ``kmeans_max_boxes`` boxes, a seeded subsample). Too few boxes (< L A): the placeholder
        priors stay and None is returned."""
        levels, per_level = self.detector.anchors.shape[:2]
        wh = training_box_sizes(gt, self.cfg.model.input_size)  # [K, 2]
        if wh.shape[0] < levels * per_level:
            log.warning("only %d training boxes for %d anchors: keeping the default priors",
                        wh.shape[0], levels * per_level)
            return None
        if wh.shape[0] > self.cfg.kmeans_max_boxes:
            gen = torch.Generator().manual_seed(seed)
            wh = wh[torch.randperm(wh.shape[0], generator=gen)[: self.cfg.kmeans_max_boxes]]
        anchors = level_anchors(wh, per_level, levels, seed=seed)  # [L, A, 2], by area
        self.detector.set_anchors(anchors.to(self.detector.anchors.device))
        return anchors

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """``batch["images"]`` uint8 ``[B, 1, 3, S, S]`` (letterboxed frames) with one target dict
        per frame -> ``loss_box``, ``loss_conf``, ``loss_cls``, ``loss_mask`` (balanced; their sum
        is Eq. 1's L_tot) and logging-only ``raw_*`` (unweighted)."""
        images = batch["images"].to(self.pixel_mean.device)
        flat = self.normalize(images.flatten(0, 1))  # [B T, 3, S, S]
        targets = [tg for clip in batch["targets"] for tg in clip]  # B T frame targets
        return self.detector(flat, targets)

    # ------------------------------------------------------------------------------ inference
    def letterbox_of(self, size: tuple[int, int]) -> Letterbox:
        """The letterbox of an (H, W) frame: into the ``input_size`` square, or (``test_rect``)
        at the same scale into the smallest multiple of the coarsest stride that holds it."""
        s = self.cfg.model.input_size
        square = letterbox_params(tuple(size), s)
        if not self.cfg.test_rect:
            return square
        stride = max(self.detector.strides)
        nh, nw = square.new_size
        out = (min(s, stride * math.ceil(nh / stride)), min(s, stride * math.ceil(nw / stride)))
        # the long side still fills S, so letterbox_params keeps the square's scale
        return letterbox_params(tuple(size), out)

    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``[H, W, 3]`` -> letterboxed, normalised ``[1, 3, S_h, S_w]`` on the model's
        device (grey padding, as in training)."""
        lb = self.letterbox_of(frame.shape[:2])
        img = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.uint8))
        img = img.to(self.pixel_mean.device).permute(2, 0, 1)[None].float()  # [1, 3, H, W]
        img = self.normalize(letterbox_images(img, lb, pad_value=float(PAD_VALUE)))
        if self.channels_last:
            img = img.contiguous(memory_format=torch.channels_last)
        return img

    def detect(self, images: torch.Tensor, size: tuple[int, int]) -> FrameInstances:
        """``[1, 3, S_h, S_w]`` from :meth:`preprocess` -> detections in the (H, W) frame: boxes
        and masks mapped back through the letterbox, scores = confidence, labels = the dataset
        category of the softmax argmax read at the mask centroid."""
        det = self.detector.predict(images, letterboxes=[self.letterbox_of(size)])[0]
        return det.to_frame_instances(self.category_ids.tolist())


@register_method("yolov4-seg", YOLOv4SegMethodConfig)
def build_yolov4_seg(cfg: YOLOv4SegMethodConfig) -> YOLOv4SegMethod:
    return YOLOv4SegMethod(cfg)
