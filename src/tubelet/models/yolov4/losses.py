"""The four YOLOv4+1seg losses and automatic loss balancing (paper §3.2, "Joint Losses", Eq. 1).

* box: smooth L1 between predicted and encoded δ at positive anchors (summed over the 4
  coordinates, averaged over positives);
* confidence: binary cross-entropy with sigmoid, target 1 at positives and 0 at the other
  anchors not ignored, summed and divided by the batch's number of positives (at least 1);
* class: cross-entropy with softmax at the centroid cells only (averaged over labelled
  cell-anchor pairs);
* mask: binary cross-entropy with sigmoid per mask pixel (averaged).

Each is computed per pyramid level, giving the L_j^i of Eq. 1; :class:`AutoLossBalance` combines
them as ``sum_i sum_j 1/2 (exp(-w_j^i) L_j^i + w_j^i)`` (Kendall et al. 2018), w learnable.
Each function returns ``(value, valid)``; ``valid`` is False when the term has nothing to
average (no positive, no labelled cell, no mask proposal on that level), and the balancer then
leaves out both parts of the term: with ``L = 0`` the ``w / 2`` part alone would drive ``w``
to minus infinity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSS_NAMES = ("box", "conf", "cls", "mask")


def box_loss(pred: Tensor, target: Tensor, beta: float = 1.0) -> tuple[Tensor, bool]:
    """Smooth L1 (Fast R-CNN; quadratic below ``beta``) over ``[P, 4]`` δ pairs, summed over
    coordinates, averaged over the P positives."""
    if pred.shape[0] == 0:
        return pred.sum() * 0, False
    return F.smooth_l1_loss(pred, target, beta=beta, reduction="sum") / pred.shape[0], True


def conf_loss(logits: Tensor, positive: Tensor, ignore: Tensor,
              normalizer: float) -> tuple[Tensor, bool]:
    """Summed BCE-with-logits over non-ignored anchors / ``normalizer``.

    Args:
        logits: ``[B, A, H, W]`` confidence logits; positive, ignore: same shape, bool.
        normalizer: usually the number of positives in the batch (at least 1).
    """
    weight = (~ignore | positive).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, positive.to(logits.dtype), weight=weight,
                                              reduction="sum")
    return loss / max(normalizer, 1.0), True


def class_loss(logits: Tensor, classes: Tensor) -> tuple[Tensor, bool]:
    """Softmax cross-entropy at labelled cells, for every anchor there.

    Args:
        logits: ``[B, A, H, W, C]``; classes: ``[B, H, W]`` long, -1 = unlabelled.
    """
    b, a, h, w, c = logits.shape
    target = classes[:, None].expand(b, a, h, w)  # the cell's class for all its anchors
    on = target >= 0
    if not on.any():
        return logits.sum() * 0, False
    return F.cross_entropy(logits[on], target[on]), True


def mask_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, bool]:
    """BCE-with-logits averaged over ``[K, M, M]`` mask pixels (targets in {0, 1})."""
    if logits.shape[0] == 0:
        return logits.sum() * 0, False
    return F.binary_cross_entropy_with_logits(logits, targets), True


class AutoLossBalance(nn.Module):
    """Automatic loss balancing, Eq. 1 of the paper (after Kendall, Gal & Cipolla 2018).

    ``terms[i, j] = 1/2 (exp(-w[i, j]) L[i, j] + w[i, j])`` with one learnable ``w`` per pyramid
    level i and loss j (initialised to ``init``, i.e. weight ``exp(-init)``); the total loss is
    ``terms.sum()``. ``dterm/dw = 1/2 (1 - exp(-w) L)``, zero at ``w = log L``: the balancer
    weighs each loss by the inverse of its own size. Keep ``w`` out of weight decay.

    Args:
        num_levels: M pyramid levels; num_losses: N losses per level.
    """

    #: kept out of weight decay by the engine's optimizer (decay would pull every w to 0, i.e.
    #: back to unit weights, against the balance Eq. 1 finds)
    no_weight_decay = {"log_vars"}

    def __init__(self, num_levels: int = 4, num_losses: int = 4, init: float = 0.0):
        super().__init__()
        self.log_vars = nn.Parameter(torch.full((num_levels, num_losses), float(init)))

    def forward(self, losses: Tensor, valid: Tensor | None = None) -> Tensor:
        """``losses`` ``[M, N]`` (``valid`` ``[M, N]`` bool, default all) -> ``[M, N]`` balanced terms,
        0 (and no gradient) where not valid."""
        w = self.log_vars
        terms = 0.5 * (torch.exp(-w) * losses + w)
        if valid is None:
            return terms
        return torch.where(valid, terms, torch.zeros_like(terms))
