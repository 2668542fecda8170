"""IAI's per-frame pieces: the streaming state, a frame's outputs, and the frame before and
after the association block as modules for :class:`~tubelet.models.frozen.FrozenByShape`."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from tubelet.models.condinst.dense import dense_from_features
from tubelet.models.condinst.model import HeadOutputs, flatten_levels
from tubelet.models.iai.association import BlockOutput
from tubelet.models.iai.memory import AssociationMemory
from tubelet.models.iai.projector import ClassificationProjector


def rewire(projector: ClassificationProjector, level: str, feats: dict[str, Tensor], x: Tensor,
           y: Tensor) -> dict[str, Tensor]:
    """The FPN's inputs with the projector's concatenation at the association ``level`` (and, in
    the stride-16 variant, the pooled block output in C5); channel counts unchanged.
    x, y: ``[B, D, h, w]`` the block's input and output."""
    out = {**feats, level: projector(feats[level], x, y)}
    if level != "c5":
        out["c5"] = projector.top(feats["c5"], y)
    return out


class BeforeBlock(nn.Module):
    """Backbone and the block's input, for :class:`FrozenByShape`: images ``[B, 3, H, W]`` ->
    (the backbone levels in ``out_features`` order, then ``x`` ``[B, D, h, w]`` if associating)."""

    def __init__(self, net: "IAICondInst"):
        super().__init__()
        self.backbone, self.projector = net.condinst.backbone, net.projector
        self.level = net.assoc_level

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        feats = self.backbone(images)
        levels = tuple(feats[k] for k in self.backbone.out_features)
        if self.projector is None:
            return levels
        return levels + (self.projector.block_input(feats[self.level]),)


class AfterBlock(nn.Module):
    """The frame after the block, for :class:`FrozenByShape`: (:class:`BeforeBlock`'s outputs,
    then the block output ``y`` if associating) -> :func:`dense_from_features`' tuple + the ID
    logits ``[B, L, N]``."""

    def __init__(self, net: "IAICondInst"):
        super().__init__()
        ci = net.condinst
        self.fpn, self.head, self.mask_branch = ci.fpn, ci.head, ci.mask_branch
        self.head_features, self.names = list(ci.head_features), list(ci.backbone.out_features)
        self.id_head, self.projector, self.level = net.id_head, net.projector, net.assoc_level

    def forward(self, *tensors: Tensor) -> tuple:
        feats = dict(zip(self.names, tensors))
        if self.projector is not None:
            x, y = tensors[len(self.names):]
            feats = rewire(self.projector, self.level, feats, x, y)
        dense = dense_from_features(self, feats)
        pyramid = dense[0]
        return dense + (flatten_levels(self.id_head([pyramid[k] for k in self.head_features])),)


@dataclass
class FrameOutputs:
    """One frame's dense outputs: ``heads`` (:class:`HeadOutputs`), ``id_logits`` ``[B, L, N]``
    and ``block`` (None without association)."""
    heads: HeadOutputs
    id_logits: Tensor
    block: BlockOutput | None


@dataclass
class PendingFrame:
    """A detected frame waiting for its IDs: ``block`` its block output, ``masks`` ``[K, H, W]``
    bool painted detection masks in the padded network-input frame."""
    frame: int
    block: BlockOutput | None
    masks: Tensor


@dataclass
class IAIState:
    """Streaming state of one video: the memory, frames detected so far, the frame to write."""
    memory: AssociationMemory
    frame_index: int = 0
    pending: PendingFrame | None = None
