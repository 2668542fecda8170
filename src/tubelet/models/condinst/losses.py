"""Losses of FCOS / CondInst as pure functions (each returns a sum; callers normalise).

* sigmoid focal loss (Lin et al. 2017, Eq. 5): ``-a_t (1 - p_t)^g log(p_t)``, alpha 0.25, gamma 2;
* GIoU loss (Rezatofighi et al. 2019): ``1 - GIoU`` of boxes given as (l, t, r, b) distances from a
  shared location;
* centerness: binary cross-entropy with logits;
* dice loss (V-Net form used by CondInst): ``1 - 2 sum(p y) / (sum p^2 + sum y^2 + eps)``;
* the mask loss (a mean, not a sum): dice averaged over instances, optionally plus a weighted
  mean per-pixel BCE (not in the paper).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> Tensor:
    """Summed focal loss.

    Args:
        logits: ``[..., C]`` raw scores.
        targets: same shape, in {0, 1} (one-hot; all-zero rows are background).
        alpha: weight of the positive term (1 - alpha on negatives); < 0 disables it.
        gamma: focusing exponent.

    Returns:
        scalar sum over all elements.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # -log(p_t)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.sum()


def ltrb_giou(pred: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """GIoU of box pairs that share their reference location.

    Args:
        pred, target: ``[N, 4]`` non-negative (l, t, r, b) distances from the same point.

    Returns:
        ``[N]`` GIoU in (-1, 1].
    """
    pl, pt, pr, pb = pred.unbind(-1)
    tl, tt, tr, tb = target.unbind(-1)
    area_p = (pl + pr) * (pt + pb)
    area_t = (tl + tr) * (tt + tb)
    inter = (torch.minimum(pl, tl) + torch.minimum(pr, tr)) * \
            (torch.minimum(pt, tt) + torch.minimum(pb, tb))
    union = area_p + area_t - inter
    enclose = (torch.maximum(pl, tl) + torch.maximum(pr, tr)) * \
              (torch.maximum(pt, tt) + torch.maximum(pb, tb))
    iou = inter / (union + eps)
    return iou - (enclose - union) / (enclose + eps)


def giou_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Sum of ``weight * (1 - GIoU)`` over ``[N, 4]`` ltrb pairs (weight ``[N]``, default 1)."""
    loss = 1 - ltrb_giou(pred, target)
    if weight is not None:
        loss = loss * weight
    return loss.sum()


def centerness_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Summed BCE-with-logits between ``[N]`` centerness logits and ``[N]`` targets in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")


def dice_loss(probs: Tensor, targets: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-instance dice loss.

    Args:
        probs: ``[N, H, W]`` (or ``[N, ...]``) mask probabilities.
        targets: same shape, in [0, 1] (soft targets from downsampling are allowed).
        eps: keeps empty-vs-empty pairs finite (loss 1 - 0 / eps = 1).

    Returns:
        ``[N]`` ``1 - 2 sum(p y) / (sum p^2 + sum y^2 + eps)``.
    """
    p, y = probs.flatten(1), targets.flatten(1)
    return 1 - 2 * (p * y).sum(1) / ((p * p).sum(1) + (y * y).sum(1) + eps)


def mask_loss(logits: Tensor, targets: Tensor, bce_weight: float = 0.0) -> Tensor:
    """CondInst's mask loss: mean over N instances of ``dice(sigmoid(logits), targets)``, plus
    ``bce_weight`` x the mean per-pixel BCE-with-logits (``logits``, ``targets``: ``[N, H, W]``).

    Dice alone has no gradient left once every probability is near 0 (dice = 1, sigmoid flat):
    a mask head pushed there by a large step stays there. BCE's gradient on a positive pixel is
    ``p - 1``, about -1 in that state, so the head recovers.
    """
    loss = dice_loss(torch.sigmoid(logits), targets).mean()
    if bce_weight:
        loss = loss + bce_weight * F.binary_cross_entropy_with_logits(logits, targets)
    return loss
