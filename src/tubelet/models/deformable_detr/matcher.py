"""Matching costs and the Hungarian matcher of the DETR-style set criterion.

Cost of assigning query q to ground-truth object g (Deformable DETR's matcher, SeqFormer / the
contrastive online method's weights class 2, L1 5, GIoU 2)::

    C[q, g] = w_class * focal(q, g) + w_bbox * |b_q - b_g|_1 + w_giou * (-GIoU(b_q, b_g))
              [+ w_mask * pixel focal(q, g) + w_dice * dice(q, g)]

with the focal class cost ``alpha (1 - p)^gamma (-log p) - (1 - alpha) p^gamma (-log(1 - p))`` at
the object's class (p the query's sigmoid probability). Boxes are (cx, cy, w, h) normalised; the
L1 term is on those, GIoU on the corner form. The mask terms are off by default (box-only matching
as in Deformable DETR; SeqFormer matches on boxes too) and cost a mask per query when on.
Assignment: :func:`tubelet.ops.hungarian` (the one copy), min(Q, G) pairs.
"""
from __future__ import annotations

import torch
from torch import Tensor

from tubelet.models.deformable_detr.box_ops import cxcywh_to_xyxy, generalized_box_iou
from tubelet.ops.hungarian import hungarian


def focal_class_cost(prob: Tensor, labels: Tensor, alpha: float = 0.25,
                     gamma: float = 2.0) -> Tensor:
    """Focal classification cost ``[Q, G]``: positive minus negative focal term at each object's class.

    Args:
        prob: ``[Q, C]`` sigmoid class probabilities.
        labels: ``[G]`` long class of each object.
    """
    neg = (1 - alpha) * prob ** gamma * (-(1 - prob + 1e-8).log())
    pos = alpha * (1 - prob) ** gamma * (-(prob + 1e-8).log())
    return pos[:, labels] - neg[:, labels]


def mask_focal_cost(logits: Tensor, targets: Tensor, alpha: float = 0.25,
                    gamma: float = 2.0) -> Tensor:
    """Pixel-mean focal cost ``[Q, G]`` of mask logits ``[Q, HW]`` against binary masks ``[G, HW]``."""
    p = logits.sigmoid()
    pos = alpha * (1 - p) ** gamma * (-(p + 1e-8).log())  # cost of calling a pixel foreground
    neg = (1 - alpha) * p ** gamma * (-(1 - p + 1e-8).log())
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def mask_dice_cost(logits: Tensor, targets: Tensor, eps: float = 1e-5) -> Tensor:
    """Dice cost ``[Q, G]``, the pairwise form of :func:`~tubelet.models.condinst.losses.dice_loss`:
    ``1 - 2 sum(p y) / (sum p^2 + sum y^2 + eps)`` for logits ``[Q, HW]`` and masks ``[G, HW]``."""
    p = logits.sigmoid()
    num = 2 * p @ targets.T
    den = (p * p).sum(1)[:, None] + (targets * targets).sum(1)[None, :] + eps
    return 1 - num / den


class HungarianMatcher:
    """One-to-one matching of queries to objects, per image.

    Args:
        cost_class, cost_bbox, cost_giou: cost weights (2, 5, 2).
        cost_mask, cost_dice: mask cost weights (0 = box-only matching).
        focal_alpha, focal_gamma: focal parameters of the class (and mask) cost.
    """

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 cost_mask: float = 0.0, cost_dice: float = 0.0, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0):
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.cost_mask, self.cost_dice = cost_mask, cost_dice
        self.alpha, self.gamma = focal_alpha, focal_gamma

    @property
    def uses_masks(self) -> bool:
        return self.cost_mask > 0 or self.cost_dice > 0

    @torch.no_grad()
    def cost(self, logits: Tensor, boxes: Tensor, tgt_labels: Tensor, tgt_boxes: Tensor,
             mask_logits: Tensor | None = None, tgt_masks: Tensor | None = None) -> Tensor:
        """Cost matrix ``[Q, G]`` of one image.

        Args:
            logits: ``[Q, C]`` class logits. boxes: ``[Q, 4]`` predicted cxcywh (normalised).
            tgt_labels: ``[G]`` long. tgt_boxes: ``[G, 4]`` cxcywh (normalised).
            mask_logits: ``[Q, H_m, W_m]`` (needed when a mask cost weight is > 0).
            tgt_masks: ``[G, H_m, W_m]`` in {0, 1}, at the mask logits' resolution.
        """
        c = self.cost_class * focal_class_cost(logits.sigmoid(), tgt_labels, self.alpha, self.gamma)
        c = c + self.cost_bbox * torch.cdist(boxes, tgt_boxes, p=1)
        c = c - self.cost_giou * generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(tgt_boxes))
        if self.uses_masks:
            if mask_logits is None or tgt_masks is None:
                raise ValueError("mask costs need mask_logits and tgt_masks")
            ml, tm = mask_logits.flatten(1), tgt_masks.flatten(1).to(mask_logits.dtype)
            c = c + self.cost_mask * mask_focal_cost(ml, tm, self.alpha, self.gamma)
            c = c + self.cost_dice * mask_dice_cost(ml, tm)
        return c

    def __call__(self, logits: Tensor, boxes: Tensor, tgt_labels: Tensor, tgt_boxes: Tensor,
                 mask_logits: Tensor | None = None,
                 tgt_masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(query index ``[M]``, object index ``[M]``) long, M = min(Q, G), queries ascending;
        arguments as :meth:`cost`."""
        device = logits.device
        if tgt_labels.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty.clone()
        rows, cols = hungarian(self.cost(logits, boxes, tgt_labels, tgt_boxes, mask_logits,
                                         tgt_masks))
        return torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)
