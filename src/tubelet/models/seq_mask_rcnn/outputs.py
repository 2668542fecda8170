"""Typed outputs of the per-frame Mask R-CNN: features, detections, both together.

Shapes: B frames (the batch), N detections, H x W the padded input (multiple of ``size_divisible``),
F = FPN width, C2 / C3 = backbone widths.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from tubelet.structures.tensor_record import TensorRecord


@dataclass
class FrameFeatures:
    """Everything a frame's later heads need, from one backbone + FPN pass.

    Attributes:
        c2: ``[B, C2, H/4, W/4]`` backbone C2 (Seq-Prop decoder, Refine at 1/4).
        c3: ``[B, C3, H/8, W/8]`` backbone C3 (Seq-Prop decoder, Refine at 1/8).
        pyramid: ``{"p2": [B, F, H/4, W/4], "p3", "p4", "p5", "pool": [B, F, H/64, W/64]}``, in
            that order (fine -> coarse): the RPN reads all five, the RoI heads P2-P5. A dict
            because torchvision's RPN and ``MultiScaleRoIAlign`` take one.
        image_sizes: valid (h, w) of each frame inside the padding.
        padded_size: (H, W) of the padded batch.
    """
    c2: Tensor
    c3: Tensor
    pyramid: dict[str, Tensor]
    image_sizes: list[tuple[int, int]]
    padded_size: tuple[int, int]

    @property
    def p2(self) -> Tensor:
        """``[B, F, H/4, W/4]`` FPN P2 (the Seq-Prop encoders' input)."""
        return self.pyramid["p2"]

    def __len__(self) -> int:
        return self.c2.shape[0]

    def frames(self, index: int | slice | list[int] | Tensor) -> "FrameFeatures":
        """The features of a subset of frames: an int (keeps a batch dim of 1), a slice, or a
        sequence / 1-D tensor of frame indices."""
        rows = list(range(len(self)))
        if isinstance(index, int):
            rows = [rows[index]]
        elif isinstance(index, slice):
            rows = rows[index]
        else:
            rows = [int(i) for i in torch.as_tensor(index).reshape(-1)]
        pick = torch.as_tensor(rows, dtype=torch.long, device=self.c2.device)
        return FrameFeatures(c2=self.c2[pick], c3=self.c3[pick],
                             pyramid={k: v[pick] for k, v in self.pyramid.items()},
                             image_sizes=[self.image_sizes[i] for i in rows],
                             padded_size=self.padded_size)

    def to(self, device) -> "FrameFeatures":
        return FrameFeatures(c2=self.c2.to(device), c3=self.c3.to(device),
                             pyramid={k: v.to(device) for k, v in self.pyramid.items()},
                             image_sizes=list(self.image_sizes), padded_size=self.padded_size)


@dataclass
class RCNNDetections(TensorRecord):
    """Detections of one frame (N <= ``max_detections``, sorted by score, highest first).

    Attributes:
        boxes: ``[N, 4]`` (x1, y1, x2, y2) pixels of the valid frame.
        scores: ``[N]`` softmax probability of the class.
        labels: ``[N]`` long 0-based foreground class (the box head's column ``label + 1``).
        masks: ``[N, h, w]`` on the valid frame (h, w): bool (probability > ``mask_thr``),
            or float probabilities when asked.
    """
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor



@dataclass
class FrameOutputs:
    """One forward of the per-frame Mask R-CNN over B frames.

    Attributes:
        features: the frames' :class:`FrameFeatures` (computed once, reused by every head).
        losses: training: ``{"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box",
            "loss_mask"}`` scalars (weights 1, as in Mask R-CNN; the trainer sums); eval: empty.
        detections: eval: B :class:`RCNNDetections`; training: ``None``.
    """
    features: FrameFeatures
    losses: dict[str, Tensor] = field(default_factory=dict)
    detections: list[RCNNDetections] | None = None
