"""Contrastive positive / negative selection (OTA-style dynamic k, REFERENCE_NOTES §4) by hand.

The loss itself is :func:`tubelet.models.embed_head.contrastive_loss`; its equality with a direct
evaluation of Eq. 2 is tested in tests/test_models_embed_head.py (test_contrastive_by_hand,
test_contrastive_matches_slow_reference); here it is checked once more on selected items.
"""
from __future__ import annotations

import math

import torch

from tests.test_models_embed_head import slow_contrastive
from tubelet.models.deformable_detr.contrastive import (SelectionConfig, center_prior,
                                                        contrastive_items, dynamic_k_matching,
                                                        select_pos_neg, selection_cost)
from tubelet.models.embed_head import contrastive_loss

CLS_HALF = (0.0625 - 0.1875) * math.log(2)  # focal class cost at p = 0.5: -0.0866434


def test_dynamic_k_by_hand():
    ious = torch.tensor([[0.9, 0.0],
                         [0.6, 0.1],
                         [0.5, 0.7],
                         [0.0, 0.3],
                         [0.1, 0.2]])
    cost = torch.tensor([[1.0, 9.0],
                         [2.0, 8.0],
                         [3.0, 0.5],
                         [7.0, 4.0],
                         [6.0, 5.0]])
    # n = 10 > Q = 5: all IoUs count. k_0 = int(0.9 + 0.6 + 0.5 + 0.1) = int(2.1) = 2,
    # k_1 = int(0.7 + 0.3 + 0.2 + 0.1) = int(1.3) = 1. Object 0 takes its 2 cheapest queries
    # (q0 cost 1, q1 cost 2), object 1 its cheapest (q2 cost 0.5); no query is taken twice.
    m = dynamic_k_matching(cost, ious, 10)
    assert m[:, 0].nonzero()[:, 0].tolist() == [0, 1] and m[:, 1].nonzero()[:, 0].tolist() == [2]
    # n = 2: k_0 = int(0.9 + 0.6) = 1 -> {q0}; k_1 = int(0.7 + 0.3) = 1 -> {q2}
    m = dynamic_k_matching(cost, ious, 2)
    assert m[:, 0].nonzero()[:, 0].tolist() == [0] and m[:, 1].nonzero()[:, 0].tolist() == [2]


def test_dynamic_k_conflict_by_hand():
    ious = torch.tensor([[0.9, 0.8], [0.6, 0.7], [0.5, 0.6]])
    cost = torch.tensor([[1.0, 2.0], [5.0, 1.5], [3.0, 9.0]])
    # k_0 = int(2.0) = 2 -> {q0 (1.0), q2 (3.0)}; k_1 = int(2.1) = 2 -> {q1 (1.5), q0 (2.0)}.
    # q0 is taken twice: it stays with object 0, its cheaper one (1.0 < 2.0).
    m = dynamic_k_matching(cost, ious, 10)
    assert m.tolist() == [[True, False], [False, True], [True, False]]


def test_dynamic_k_repair_by_hand():
    ious = torch.tensor([[0.9, 0.9], [0.05, 0.05], [0.05, 0.05]])
    cost = torch.tensor([[1.0, 2.0], [5.0, 6.0], [4.0, 7.0]])
    # k_0 = k_1 = int(1.0) = 1: both objects take q0; q0 stays with object 0 (1.0 < 2.0).
    # Object 1 is left empty: with taken queries penalised by 100000, it takes its cheapest free
    # query, q1 (6.0 < 7.0).
    m = dynamic_k_matching(cost, ious, 10)
    assert m.tolist() == [[True, False], [False, True], [False, False]]
    assert torch.equal(cost, torch.tensor([[1.0, 2.0], [5.0, 6.0], [4.0, 7.0]]))  # not modified
    # fewer queries than objects: the repair stops when every query is taken
    one = dynamic_k_matching(cost[:1], ious[:1], 10)
    assert one.tolist() == [[True, False]]


# objects A (0.5, 0.5, 0.4, 0.4) -> xyxy (0.3, 0.3, 0.7, 0.7) and B (0.9, 0.9, 0.2, 0.2)
GT = torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.9, 0.9, 0.2, 0.2]])
QUERIES = torch.tensor([[0.5, 0.5, 0.4, 0.4],     # q0: A exactly
                        [0.65, 0.5, 0.3, 0.4],    # q1: in A's box, 0.15 > 2.5/32 from its centre
                        [0.9, 0.9, 0.1, 0.1],     # q2: at B's centre, far from A
                        [0.1, 0.1, 0.1, 0.1]])    # q3: outside everything


def test_center_prior_by_hand():
    in_any, in_both = center_prior(QUERIES, GT)
    assert in_any.tolist() == [True, True, True, False]
    assert in_both.tolist() == [[True, False], [False, False], [False, True], [False, False]]


def test_selection_cost_by_hand():
    prob = torch.full((4, 1), 0.5, dtype=torch.float64)
    cost = selection_cost(prob, QUERIES.double(), torch.tensor([0, 0]), GT.double())
    # q0 vs A: GIoU 1, in box and centre -> class - 3
    assert math.isclose(cost[0, 0].item(), CLS_HALF - 3, rel_tol=1e-6)
    # q1 vs A: xyxy (0.5, 0.3, 0.8, 0.7): inter 0.08, union 0.2, enclosing 0.2 -> GIoU 0.4;
    # inside A's box but not its centre region -> + 100
    assert math.isclose(cost[1, 0].item(), CLS_HALF - 1.2 + 100, rel_tol=1e-6)
    # q2 vs A: disjoint, union 0.17, enclosing 0.65^2 -> GIoU -(0.4225 - 0.17) / 0.4225;
    # not in A's box/centre (+ 100) but inside B's, so no + 10000
    giou = -(0.4225 - 0.17) / 0.4225
    assert math.isclose(cost[2, 0].item(), CLS_HALF - 3 * giou + 100, rel_tol=1e-6)
    # q2 vs B: inter 0.01, union 0.04, enclosing = B -> GIoU 0.25
    assert math.isclose(cost[2, 1].item(), CLS_HALF - 0.75, rel_tol=1e-6)
    # q3: in no box or centre region -> + 100 + 10000 for every object; vs B: enclosing
    # (0.05..1.0)^2 = 0.9025, union 0.05 -> GIoU -(0.9025 - 0.05) / 0.9025
    giou = -(0.9025 - 0.05) / 0.9025
    assert math.isclose(cost[3, 1].item(), CLS_HALF - 3 * giou + 10100, rel_tol=1e-6)


def test_positives_inside_negatives_outside():
    prob = torch.full((4, 1), 0.5)
    pos, neg = select_pos_neg(prob, QUERIES, torch.tensor([0, 0]), GT, SelectionConfig.paper())
    # A: IoUs q0 1, q1 0.4 -> k = int(1.4) = 1 -> {q0}; B: q2 0.25 -> k = max(1, 0) -> {q2}
    assert pos.tolist() == [[True, False], [False, False], [False, True], [False, False]]
    assert neg.tolist() == [[False, True], [True, True], [True, False], [True, True]]


def _pair():
    gt = torch.tensor([[0.25, 0.25, 0.3, 0.3], [0.75, 0.75, 0.3, 0.3]])
    key_boxes = torch.tensor([gt[1].tolist(), gt[0].tolist(), [0.5, 0.5, 0.1, 0.1],
                              [0.27, 0.25, 0.3, 0.3]])  # key query of A: q1, of B: q0
    ref_boxes = torch.tensor([gt[0].tolist(), [0.26, 0.25, 0.3, 0.3], gt[1].tolist(),
                              [0.5, 0.5, 0.1, 0.1]])
    prob = torch.full((4, 1), 0.5)
    gen = torch.Generator().manual_seed(0)
    key_emb, ref_emb = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    return gt, key_boxes, ref_boxes, prob, key_emb, ref_emb


def test_contrastive_items_by_hand():
    gt, key_boxes, ref_boxes, prob, key_emb, ref_emb = _pair()
    labels = torch.tensor([0, 0])
    anchors, pos, neg = contrastive_items(prob, key_boxes, key_emb, prob, ref_boxes, ref_emb,
                                          labels, gt, gt, torch.tensor([True, True]))
    assert torch.equal(anchors, key_emb[[1, 0]])
    # A on the reference frame: IoUs q0 1, q1 0.087 / 0.093 = 0.935 -> k = int(1.935) = 1 -> {q0}
    assert torch.equal(pos[0], ref_emb[[0]]) and torch.equal(neg[0], ref_emb[[1, 2, 3]])
    assert torch.equal(pos[1], ref_emb[[2]]) and torch.equal(neg[1], ref_emb[[0, 1, 3]])
    # the loss on these items is Eq. 2 evaluated directly
    assert math.isclose(contrastive_loss(anchors, pos, neg).item(),
                        slow_contrastive(anchors, pos, neg), rel_tol=1e-6)
    # an object absent from the reference frame gives no anchor
    anchors, pos, neg = contrastive_items(prob, key_boxes, key_emb, prob, ref_boxes, ref_emb,
                                          labels, gt, gt, torch.tensor([False, True]))
    assert torch.equal(anchors, key_emb[[0]]) and torch.equal(pos[0], ref_emb[[2]])
    assert torch.equal(neg[0], ref_emb[[0, 1, 3]])
    anchors, pos, neg = contrastive_items(prob, key_boxes, key_emb, prob, ref_boxes, ref_emb,
                                          labels, gt, gt, torch.tensor([False, False]))
    assert anchors.shape == (0, 3) and pos == [] and neg == []
