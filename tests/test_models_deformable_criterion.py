"""Box ops, Hungarian matcher (vs brute force) and the deep-supervised set criterion."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from tubelet.models.deformable_detr.box_ops import (box_iou, cxcywh_to_xyxy, generalized_box_iou,
                                                    xyxy_to_cxcywh)
from tubelet.models.deformable_detr.criterion import CriterionConfig, SetCriterion, sample_masks
from tubelet.models.deformable_detr.matcher import (HungarianMatcher, focal_class_cost,
                                                    mask_dice_cost, mask_focal_cost)


@pytest.mark.parametrize("a, b, expect", [
    ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7 - 2 / 9),   # inter 1, union 7, enclosing 3x3 = 9
    ((0, 0, 1, 1), (2, 0, 3, 1), 0 - 1 / 3),       # disjoint: union 2, enclosing 3x1 = 3
    ((0, 0, 4, 4), (1, 1, 2, 2), 1 / 16),          # nested: enclosing box = union
    ((1, 2, 3, 5), (1, 2, 3, 5), 1.0),             # identical
])
def test_giou_by_hand(a, b, expect):
    f64 = torch.float64
    g = generalized_box_iou(torch.tensor([a], dtype=f64), torch.tensor([b], dtype=f64))
    assert math.isclose(g.item(), expect, abs_tol=1e-12)


def test_box_conversions_and_iou():
    xyxy = torch.tensor([[0.1, 0.2, 0.5, 0.8]])
    assert torch.allclose(xyxy_to_cxcywh(xyxy), torch.tensor([[0.3, 0.5, 0.4, 0.6]]))
    assert torch.allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy)
    iou = box_iou(torch.tensor([[0.0, 0, 2, 2], [5, 5, 6, 6]]), torch.tensor([[1.0, 1, 3, 3]]))
    assert torch.allclose(iou, torch.tensor([[1 / 7], [0.0]]))


def slow_giou(a, b):
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    enclose = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    return inter / union - (enclose - union) / enclose


def slow_cost(logits, boxes, labels, tgt):
    """Per-pair transcription of 2 * focal + 5 * L1 - 2 * GIoU."""
    cost = [[0.0] * len(labels) for _ in range(len(boxes))]
    for q in range(len(boxes)):
        for g in range(len(labels)):
            p = 1 / (1 + math.exp(-float(logits[q][labels[g]])))
            focal = 0.25 * (1 - p) ** 2 * -math.log(p + 1e-8) - 0.75 * p ** 2 * -math.log(1 - p + 1e-8)
            l1 = sum(abs(float(x) - float(y)) for x, y in zip(boxes[q], tgt[g]))
            to_xyxy = lambda c: (c[0] - c[2] / 2, c[1] - c[3] / 2, c[0] + c[2] / 2, c[1] + c[3] / 2)
            giou = slow_giou(to_xyxy([float(v) for v in boxes[q]]), to_xyxy([float(v) for v in tgt[g]]))
            cost[q][g] = 2 * focal + 5 * l1 - 2 * giou
    return cost


def _random_case(q, g, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(q, 4, generator=gen, dtype=torch.float64)

    def rand_boxes(n):  # centres anywhere, sizes 0.1 .. 0.5
        return torch.cat([torch.rand(n, 2, generator=gen),
                          0.1 + 0.4 * torch.rand(n, 2, generator=gen)], 1).double()

    boxes, tgt = rand_boxes(q), rand_boxes(g)
    labels = torch.randint(0, 4, (g,), generator=gen)
    return logits, boxes, labels, tgt


@pytest.mark.parametrize("q, g, seed", [(5, 3, 0), (4, 4, 1), (2, 3, 2)])
def test_matcher_against_brute_force(q, g, seed):
    logits, boxes, labels, tgt = _random_case(q, g, seed)
    matcher = HungarianMatcher()
    cost = slow_cost(logits.tolist(), boxes.tolist(), labels.tolist(), tgt.tolist())
    assert torch.allclose(matcher.cost(logits, boxes, labels, tgt),
                          torch.tensor(cost, dtype=torch.float64), atol=1e-9)
    rows, cols = matcher(logits, boxes, labels, tgt)
    assert len(rows) == min(q, g) and len(set(rows.tolist())) == len(rows) == len(set(cols.tolist()))
    got = sum(cost[r][c] for r, c in zip(rows.tolist(), cols.tolist()))
    if q >= g:  # every object gets a distinct query
        best = min(sum(cost[p[j]][j] for j in range(g)) for p in itertools.permutations(range(q), g))
    else:  # every query gets a distinct object
        best = min(sum(cost[i][p[i]] for i in range(q)) for p in itertools.permutations(range(g), q))
    assert math.isclose(got, best, rel_tol=1e-9)


def test_focal_class_cost_by_hand():
    # p = 0.5: positive term 0.25 * 0.25 * ln 2, negative term 0.75 * 0.25 * ln 2
    c = focal_class_cost(torch.tensor([[0.5, 0.9]]), torch.tensor([0, 1, 0]))
    assert math.isclose(c[0, 0].item(), (0.0625 - 0.1875) * math.log(2), rel_tol=1e-5)
    p = 0.9
    expect = 0.25 * 0.01 * -math.log(p) - 0.75 * 0.81 * -math.log(0.1)
    assert math.isclose(c[0, 1].item(), expect, rel_tol=1e-5) and c.shape == (1, 3)


def test_sample_masks_by_hand():
    m = torch.zeros(1, 10, 10, dtype=torch.bool)
    m[0, 2, 6] = True  # the stride-4 pixel (0, 1)'s centre (row 2, col 6)
    m[0, 3, 3] = True  # not a centre: ignored
    out = sample_masks(m, 4, (3, 3))  # centres at 2, 6 (10 is beyond the mask: 0)
    expect = torch.zeros(1, 3, 3)
    expect[0, 0, 1] = 1
    assert torch.equal(out, expect)


def slow_focal(x, y, alpha=0.25, gamma=2.0):
    p = 1 / (1 + math.exp(-x))
    pt = p if y else 1 - p
    return -(alpha if y else 1 - alpha) * (1 - pt) ** gamma * math.log(pt)


def _hand_outputs():
    # image 10 x 10, one object xyxy (2, 2, 6, 6) px -> cxcywh (0.4, 0.4, 0.4, 0.4), class 0
    last = {"pred_logits": torch.tensor([[[0.0], [-2.0]]], requires_grad=True),
            "pred_boxes": torch.tensor([[[0.5, 0.4, 0.4, 0.4], [0.8, 0.8, 0.2, 0.2]]]),
            "mask_params": torch.zeros(1, 2, 1)}
    aux = {"pred_logits": torch.tensor([[[-2.0], [0.0]]]),
           "pred_boxes": torch.tensor([[[0.8, 0.8, 0.2, 0.2], [0.4, 0.4, 0.4, 0.4]]]),
           "mask_params": torch.zeros(1, 2, 1)}
    out = dict(last, aux_outputs=[aux], image_size=(10, 10), mask_feats=torch.zeros(1, 1, 3, 3))
    masks = torch.zeros(1, 10, 10, dtype=torch.bool)
    masks[0, 2:7, 2:7] = True  # centres (2, 2), (2, 6), (6, 2), (6, 6) are inside
    targets = [{"boxes": torch.tensor([[2.0, 2, 6, 6]]), "labels": torch.tensor([0]), "masks": masks}]
    return out, targets


MASK_LOGITS = [[1.0, -1.0, 0.5], [2.0, 0.0, -3.0], [0.0, 0.0, 1.0]]


def _mask_fn(outputs, layer, img, qry):
    return torch.tensor(MASK_LOGITS).expand(len(qry), 3, 3) + layer["mask_params"][img, qry, :, None]


def test_losses_by_hand():
    out, targets = _hand_outputs()
    losses, indices = SetCriterion(1, CriterionConfig.paper())(out, targets, mask_fn=_mask_fn)
    assert [i.tolist() for i in indices[0]] == [[0], [0]]
    # class: query 0 is the object's (p = 0.5), query 1 background (logit -2); N_obj = 1
    assert math.isclose(losses["loss_class"].item(), 2 * (slow_focal(0.0, 1) + slow_focal(-2.0, 0)),
                        rel_tol=1e-5)
    # L1: |0.5 - 0.4| = 0.1; GIoU: (0.3, 0.2, 0.7, 0.6) vs (0.2, 0.2, 0.6, 0.6) -> IoU 0.12 / 0.2,
    # enclosing box = union -> GIoU 0.6
    assert math.isclose(losses["loss_bbox"].item(), 5 * 0.1, rel_tol=1e-5)
    assert math.isclose(losses["loss_giou"].item(), 2 * (1 - 0.6), rel_tol=1e-5)
    target = [[1, 1, 0], [1, 1, 0], [0, 0, 0]]  # stride-4 centres inside the 2..6 square
    pix = [(x, y) for row_x, row_y in zip(MASK_LOGITS, target) for x, y in zip(row_x, row_y)]
    focal = sum(slow_focal(x, y) for x, y in pix) / 9
    p = [1 / (1 + math.exp(-x)) for x, _ in pix]
    dice = 1 - 2 * sum(pi * y for pi, (_, y) in zip(p, pix)) / (
        sum(pi * pi for pi in p) + sum(y for _, y in pix) + 1e-5)
    assert math.isclose(losses["loss_mask"].item(), 2 * focal, rel_tol=1e-5)
    assert math.isclose(losses["loss_dice"].item(), 5 * dice, rel_tol=1e-5)
    # the auxiliary layer is matched on its own (query 1 there) and its losses carry "_0"
    assert set(losses) == {f"loss_{n}{s}" for n in ("class", "bbox", "giou", "mask", "dice")
                           for s in ("", "_0")}
    assert losses["loss_bbox_0"].item() == 0 and abs(losses["loss_giou_0"].item()) < 1e-6
    assert math.isclose(losses["loss_class_0"].item(), losses["loss_class"].item(), rel_tol=1e-6)
    sum(losses.values()).backward()
    assert out["pred_logits"].grad is not None


def test_no_objects_and_no_aux_masks():
    out, targets = _hand_outputs()
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                "masks": torch.zeros(0, 10, 10, dtype=torch.bool)}]
    losses, indices = SetCriterion(1, CriterionConfig(aux_masks=False))(out, targets, _mask_fn)
    assert indices[0][0].numel() == 0
    assert math.isclose(losses["loss_class"].item(), 2 * (slow_focal(0.0, 0) + slow_focal(-2.0, 0)),
                        rel_tol=1e-5)
    assert losses["loss_bbox"].item() == 0 and losses["loss_mask"].item() == 0
    assert "loss_mask_0" not in losses and "loss_bbox_0" in losses


def test_mask_matching_cost_changes_assignment():
    out, targets = _hand_outputs()
    # two identical boxes / scores; only the masks tell the queries apart
    out["pred_boxes"] = torch.tensor([[[0.4, 0.4, 0.4, 0.4]] * 2])
    out["pred_logits"] = torch.zeros(1, 2, 1)
    out["mask_params"] = torch.tensor([[[-10.0], [10.0]]])  # query 1's mask covers everything
    # dice cost: query 0 (empty mask) 1; query 1: 1 - 2 * 4 / (9 + 4) = 5 / 13
    crit = SetCriterion(1, CriterionConfig(cost_dice=5.0))
    _, indices = crit(dict(out, aux_outputs=[]), targets, _mask_fn)
    assert indices[0][0].tolist() == [1]


def test_mask_costs_against_slow_formula():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    masks = (torch.rand(2, 6, generator=gen) > 0.5).double()
    focal = mask_focal_cost(logits, masks)
    dice = mask_dice_cost(logits, masks)
    for q in range(3):
        for g in range(2):
            pix = list(zip(logits[q].tolist(), masks[g].tolist()))
            # the focal cost of a mask is the mean over pixels of each pixel's focal loss
            expect = sum(slow_focal(x, int(y)) for x, y in pix) / 6
            assert math.isclose(focal[q, g].item(), expect, rel_tol=1e-6)
            p = [1 / (1 + math.exp(-x)) for x, _ in pix]
            d = 1 - 2 * sum(a * y for a, (_, y) in zip(p, pix)) / (
                sum(a * a for a in p) + sum(y for _, y in pix) + 1e-5)
            assert math.isclose(dice[q, g].item(), d, rel_tol=1e-6)
