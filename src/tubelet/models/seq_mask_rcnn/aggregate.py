"""Soft aggregation of per-object masks and the scale-balanced soft IoU loss (Seq-Prop head).

Both come from the Propose-Reduce supplementary, Sec. 3: Eq. (1) (soft aggregation, from STM)
and Eq. (2) (scale-balanced soft IoU loss). Shapes: K objects, H x W pixels (any trailing dims).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Probabilities are clamped before the logit so that 0 and 1 do not give -inf / +inf (notes §1).
PROB_CLAMP = 1e-7


def soft_aggregate_logits(probs: Tensor) -> Tensor:
    """Logits of the soft aggregation: ``[K, *S]`` object probabilities -> ``[K + 1, *S]``.

    Channel 0 is the background ``prod_k (1 - p_k)``; channels 1..K are the objects. Every channel
    is clamped to ``[1e-7, 1 - 1e-7]`` and mapped to ``log(p / (1 - p))``. A softmax over the K + 1
    channels of these logits is Eq. (1) of the supplementary:
    ``p_k / (1 - p_k) / sum_i p_i / (1 - p_i)``, i = 0..K.
    """
    background = torch.prod(1 - probs, dim=0, keepdim=True)  # [1, *S]
    em = torch.cat([background, probs], dim=0).clamp(PROB_CLAMP, 1 - PROB_CLAMP)  # [K + 1, *S]
    return torch.log(em / (1 - em))


def soft_aggregate(probs: Tensor) -> Tensor:
    """Soft aggregation (supplementary Eq. 1): ``[K, *S]`` independent per-object foreground
    probabilities -> ``[K + 1, *S]`` probabilities that sum to 1 over dim 0 (0 = background)."""
    return torch.softmax(soft_aggregate_logits(probs), dim=0)


def soft_aggregate_log_probs(logits: Tensor, max_logit: float = 30.0) -> Tensor:
    """Soft aggregation (Eq. 1) in log space, from object *logits*: ``[K, *S]`` ``z_k`` with
    ``p_k = sigmoid(z_k)`` -> ``[K + 1, *S]`` log-probabilities (channel 0 = background).

    The same distribution as ``soft_aggregate(sigmoid(z))`` wherever every probability lies
    inside the ``[1e-7, 1 - 1e-7]`` clamp, but without that clamp: object channels keep their
    logit ``z_k`` and the background's logit ``log(b / (1 - b))``, ``b = prod_k (1 - p_k)``, is
    taken from ``log b = sum_k log sigmoid(-z_k)`` and limited to ``+-max_logit``. A saturated
    head therefore still gets a gradient from a loss on these log-probabilities (the auxiliary
    cross-entropy of ``propose-reduce``'s ``prop_ce_weight``), where the clamp would give none.
    """
    log_bg = F.logsigmoid(-logits).sum(0, keepdim=True)  # [1, *S] log prod_k (1 - p_k)
    # log(1 - b) = log(-expm1(log b)); log b <= -1e-20 keeps it finite when b rounds to 1
    log_not_bg = torch.log(-torch.expm1(log_bg.clamp(max=-1e-20)))  # [1, *S]
    bg_logit = (log_bg - log_not_bg).clamp(-max_logit, max_logit)
    return torch.log_softmax(torch.cat([bg_logit, logits], dim=0), dim=0)  # [K + 1, *S]


def soft_aggregate_ce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Pixel-wise cross-entropy of the soft aggregation (STM's training loss), mean over pixels.

    Args:
        logits: ``[K, H, W]`` object logits (``p_k = sigmoid(z_k)``), see
            :func:`soft_aggregate_log_probs`.
        target: ``[K, H, W]`` ground-truth masks (bool or {0, 1}); a pixel's class is the last
            object that covers it, background (0) where none does.
    Returns:
        Scalar ``mean_pixels -log q_{c(pixel)}`` with ``q`` the aggregated distribution.
    """
    if logits.shape != target.shape or logits.dim() != 3:
        raise ValueError(f"soft_aggregate_ce_loss: logits {tuple(logits.shape)} and target "
                         f"{tuple(target.shape)} must both be [K, H, W]")
    k = torch.arange(1, len(target) + 1, device=target.device).view(-1, 1, 1)  # [K, 1, 1]
    cls = (target.bool() * k).amax(0) if len(target) else \
        torch.zeros(target.shape[1:], dtype=torch.long, device=target.device)  # [H, W]
    log_q = soft_aggregate_log_probs(logits)  # [K + 1, H, W]
    return F.nll_loss(log_q[None], cls[None].long())


def soft_iou_loss(pred: Tensor, target: Tensor, eps: float = 1e-6,
                  skip_empty: bool = True) -> Tensor:
    """Scale-balanced soft IoU loss (supplementary Eq. 2), averaged over objects.

    Args:
        pred: ``[K, H, W]`` predicted probabilities in [0, 1] (the aggregated object channels).
        target: ``[K, H, W]`` ground-truth masks (bool or {0, 1} float).
        eps: added to each object's union (released code: 1e-6).
        skip_empty: leave out objects whose target is empty. The released code only feeds
            objects present in the current frame; for an empty target the loss would be a
            constant 1 that carries no gradient and only shifts the mean.
    Returns:
        Scalar ``mean_k [1 - sum(min(p_k, y_k)) / (sum(max(p_k, y_k)) + eps)]`` over the kept
        objects; a zero that keeps the graph when no object is kept.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"soft_iou_loss: pred {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} must both be [K, H, W]")
    target = target.to(pred.dtype)
    inter = torch.minimum(pred, target).flatten(1).sum(1)  # [K]
    union = torch.maximum(pred, target).flatten(1).sum(1)  # [K]
    loss = 1 - inter / (union + eps)  # [K]
    if skip_empty:
        loss = loss[target.flatten(1).sum(1) > 0]
    if loss.numel() == 0:
        return pred.sum() * 0.0
    return loss.mean()
