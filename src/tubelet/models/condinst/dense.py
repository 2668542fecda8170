"""CondInst's dense part at inference (lazy controller), for a graph frozen per input shape.

:func:`dense_from_features` is the FPN + head towers + mask branch on backbone features, the part
:class:`~tubelet.models.condinst.model.CondInst` and IAI (after its association block) run through
:class:`~tubelet.models.frozen.FrozenByShape`; :class:`CondInstDense` puts the backbone in front
of it.
"""
from __future__ import annotations

from torch import Tensor, nn


class CondInstDense(nn.Module):
    """The dense part of :meth:`CondInst.forward_heads` at inference (lazy controller), as one
    module for :class:`FrozenByShape` to trace: backbone, FPN, head towers, mask branch."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.backbone, self.fpn, self.head = net.backbone, net.fpn, net.head
        self.mask_branch, self.head_features = net.mask_branch, list(net.head_features)

    def forward(self, images: Tensor):
        return dense_from_features(self, self.backbone(images))


def dense_from_features(net: nn.Module, feats: dict[str, Tensor]) -> tuple:
    """``net``'s FPN, head towers (lazy controller) and mask branch on backbone features ->
    ``(pyramid, cls, box, ctr, features, box_feats, mask_feats)`` (per-level lists as
    :meth:`FCOSHead.forward`'s); :meth:`CondInst.heads_from_dense` turns it into
    :class:`HeadOutputs`. ``net`` has CondInst's ``fpn``, ``head``, ``mask_branch`` and
    ``head_features``."""
    pyramid = net.fpn(feats)
    head = net.head([pyramid[k] for k in net.head_features], with_controller=False)
    return (pyramid, head["cls"], head["box"], head["ctr"], head["features"],
            head["box_feats"], net.mask_branch(pyramid))
