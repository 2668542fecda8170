"""Positive / negative selection for the contrastive embedding loss (Sec. 3.2; REFERENCE_NOTES §4).

For each object g on the reference frame, with the reference frame's predictions (sigmoid class
probabilities p, boxes b) the OTA-style selection cost of query q is::

    cost[q, g] = focal_class_cost(p_q, c_g) + 3 * (-GIoU(b_q, B_g))
                 + 100   * [centre of b_q not (inside B_g and within r of B_g's centre)]
                 + 10000 * [centre of b_q neither inside any object's box nor within r of any centre]

with r = 2.5 / 32 in normalised coordinates (a 2.5-stride radius at stride 32, as in the released
code; comparisons strict). Dynamic k (OTA / YOLOX): ``k_g = max(1, int(sum of the top-n IoUs of
object g over queries))``; object g takes its k_g lowest-cost queries; a query taken by several
objects keeps only the object with its lowest cost; an object left without a query takes its
cheapest still-free query (repeated until every object has one, when Q >= G).
Positives of g = its dynamic-k set with n = 10; negatives of g = every query outside its set
computed with n = 100 (queries of other objects included). The anchor v of g is the key-frame query
with the lowest selection cost for g on the key frame. The loss itself is
:func:`tubelet.models.embed_head.contrastive_loss` (Eq. 2) + :func:`auxiliary_cosine_loss`.

Where the released code differs: its second conflict pass reads the query counts from before the
pass and its repair loop adds the 100000 penalty to the caller's cost matrix in place (so the
n = 100 call sees a modified matrix); here the cost is left untouched and the counts are current.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tubelet.models.deformable_detr.box_ops import box_iou, cxcywh_to_xyxy, generalized_box_iou
from tubelet.models.deformable_detr.matcher import focal_class_cost


@dataclass
class SelectionConfig:
    """Constants of the contrastive positive / negative selection (released code's values)."""
    giou_weight: float = 3.0          # weight of -GIoU in the selection cost
    center_penalty: float = 100.0     # query centre not inside the box AND near the object centre
    outside_penalty: float = 10000.0  # query centre neither inside any box nor near any centre
    center_radius: float = 2.5 / 32   # centre region half-size, normalised coordinates
    pos_candidates: int = 10          # n of the dynamic k for positives
    neg_candidates: int = 100         # n of the dynamic k whose complement gives negatives
    focal_alpha: float = 0.25         # focal class cost alpha
    focal_gamma: float = 2.0          # focal class cost gamma

    @classmethod
    def paper(cls, **overrides) -> "SelectionConfig":
        """The released code's constants (n = 10 / 100 with 300 queries)."""
        return cls(**overrides)

    @classmethod
    def cpu(cls, **overrides) -> "SelectionConfig":
        """Same constants; with fewer queries than n the top-n IoU sum runs over all queries."""
        return cls(**overrides)


def center_prior(boxes: Tensor, gt_boxes: Tensor, radius: float = 2.5 / 32) -> tuple[Tensor, Tensor]:
    """Where each query's box centre lies relative to the objects.

    Args:
        boxes: ``[Q, 4]`` predicted cxcywh (normalised). gt_boxes: ``[G, 4]`` cxcywh.
        radius: half-size of the square centre region around each object's centre.

    Returns:
        (``[Q]`` bool: inside some object's box or centre region, ``[Q, G]`` bool: inside object g's
        box and its centre region).
    """
    cx, cy = boxes[:, 0:1], boxes[:, 1:2]  # [Q, 1]
    g = cxcywh_to_xyxy(gt_boxes)  # [G, 4]
    in_box = (cx > g[:, 0]) & (cx < g[:, 2]) & (cy > g[:, 1]) & (cy < g[:, 3])  # [Q, G]
    gx, gy = gt_boxes[:, 0], gt_boxes[:, 1]
    in_ctr = (cx > gx - radius) & (cx < gx + radius) & (cy > gy - radius) & (cy < gy + radius)
    return in_box.any(1) | in_ctr.any(1), in_box & in_ctr


@torch.no_grad()
def selection_cost(prob: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor,
                   cfg: SelectionConfig | None = None) -> Tensor:
    """The selection cost ``[Q, G]`` of the module docstring.

    Args:
        prob: ``[Q, C]`` sigmoid class probabilities. boxes: ``[Q, 4]`` cxcywh (normalised).
        gt_labels: ``[G]`` long. gt_boxes: ``[G, 4]`` cxcywh (normalised).
    """
    cfg = cfg or SelectionConfig()
    in_any, in_both = center_prior(boxes, gt_boxes, cfg.center_radius)
    giou = generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(gt_boxes))
    cost = focal_class_cost(prob, gt_labels, cfg.focal_alpha, cfg.focal_gamma) \
        - cfg.giou_weight * giou + cfg.center_penalty * (~in_both).to(prob.dtype)
    return cost + cfg.outside_penalty * (~in_any).to(prob.dtype)[:, None]


def _resolve_conflicts(matching: Tensor, cost: Tensor) -> Tensor:
    """Rows (queries) matched to several objects keep only their lowest-cost object (over all G)."""
    multi = matching.sum(1) > 1
    if bool(multi.any()):
        best = cost[multi].argmin(1)  # [R]
        matching[multi] = False
        matching[multi.nonzero()[:, 0], best] = True
    return matching


@torch.no_grad()
def dynamic_k_matching(cost: Tensor, ious: Tensor, n_candidates: int) -> Tensor:
    """OTA dynamic-k assignment (module docstring) -> ``[Q, G]`` bool, True where query q serves g.

    Args:
        cost: ``[Q, G]`` selection cost. ious: ``[Q, G]`` box IoU of queries and objects.
        n_candidates: n, how many top IoUs of an object sum to its k (clamped to Q).
    """
    q, g = cost.shape
    matching = torch.zeros(q, g, dtype=torch.bool, device=cost.device)
    if q == 0 or g == 0:
        return matching
    top_ious = ious.topk(min(n_candidates, q), dim=0).values  # [n, G]
    ks = top_ious.sum(0).int().clamp(min=1).tolist()  # int() truncates, as the released code
    for j, k in enumerate(ks):
        matching[cost[:, j].topk(min(k, q), largest=False).indices, j] = True
    matching = _resolve_conflicts(matching, cost)
    while bool((matching.sum(0) == 0).any()) and not bool(matching.any(1).all()):
        # an object lost all its queries to cheaper objects: it takes its cheapest free query
        penalised = cost + 100000.0 * matching.any(1, keepdim=True).to(cost.dtype)
        for j in (matching.sum(0) == 0).nonzero()[:, 0].tolist():
            matching[penalised[:, j].argmin(), j] = True
        matching = _resolve_conflicts(matching, penalised)
    return matching


@torch.no_grad()
def select_pos_neg(prob: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor,
                   cfg: SelectionConfig | None = None) -> tuple[Tensor, Tensor]:
    """Positives and negatives of each object on the reference frame.

    Args:
        prob: ``[Q, C]`` sigmoid probabilities. boxes: ``[Q, 4]`` cxcywh (normalised).
        gt_labels: ``[G]`` long. gt_boxes: ``[G, 4]`` cxcywh (normalised).

    Returns:
        (positives ``[Q, G]`` bool, negatives ``[Q, G]`` bool).
    """
    cfg = cfg or SelectionConfig()
    cost = selection_cost(prob, boxes, gt_labels, gt_boxes, cfg)
    ious = box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(gt_boxes))
    pos = dynamic_k_matching(cost, ious, cfg.pos_candidates)
    neg = ~dynamic_k_matching(cost, ious, cfg.neg_candidates)
    return pos, neg


@torch.no_grad()
def select_key_queries(prob: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor,
                       cfg: SelectionConfig | None = None) -> Tensor:
    """``[G]`` long: the key-frame query with the lowest selection cost for each object
    (arguments as :func:`select_pos_neg`, on the key frame)."""
    cost = selection_cost(prob, boxes, gt_labels, gt_boxes, cfg)
    return cost.argmin(0)


def contrastive_items(key_prob: Tensor, key_boxes: Tensor, key_embeds: Tensor, ref_prob: Tensor,
                      ref_boxes: Tensor, ref_embeds: Tensor, gt_labels: Tensor,
                      key_gt_boxes: Tensor, ref_gt_boxes: Tensor, ref_valid: Tensor,
                      cfg: SelectionConfig | None = None
                      ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Anchors, positives and negatives of one key / reference frame pair, ready for
    :func:`~tubelet.models.embed_head.contrastive_loss` and :func:`auxiliary_cosine_loss`.

    Objects are aligned by index across the two frames (object g is the same instance on both).

    Args:
        key_prob, ref_prob: ``[Q, C]`` sigmoid class probabilities of the key / reference frame.
        key_boxes, ref_boxes: ``[Q, 4]`` predicted cxcywh (normalised).
        key_embeds, ref_embeds: ``[Q, D]`` contrastive embeddings.
        gt_labels: ``[G]`` long. key_gt_boxes, ref_gt_boxes: ``[G, 4]`` cxcywh (normalised).
        ref_valid: ``[G]`` bool, object present on the reference frame.

    Returns:
        (anchors ``[A, D]``, A tensors ``[P_a, D]`` of positives, A tensors ``[N_a, D]`` of
        negatives), one anchor per object present on both frames (A <= G).
    """
    cfg = cfg or SelectionConfig()
    valid = ref_valid.nonzero()[:, 0]
    if valid.numel() == 0:
        return key_embeds[:0], [], []
    key_q = select_key_queries(key_prob, key_boxes.detach(), gt_labels[valid],
                               key_gt_boxes[valid], cfg)  # [A]
    # the cost runs over the present objects only, so absent ones take no queries
    pos, neg = select_pos_neg(ref_prob, ref_boxes.detach(), gt_labels[valid], ref_gt_boxes[valid],
                              cfg)  # [Q, A] each
    anchors = key_embeds[key_q]
    positives = [ref_embeds[pos[:, a]] for a in range(valid.numel())]
    negatives = [ref_embeds[neg[:, a]] for a in range(valid.numel())]
    return anchors, positives, negatives
