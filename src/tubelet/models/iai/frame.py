"""IAI's per-frame pieces: the streaming state, a frame's outputs and the projector's wiring."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from tubelet.models.condinst.model import HeadOutputs
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
