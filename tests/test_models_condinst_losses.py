"""CondInst losses against hand-derived numbers."""
from __future__ import annotations

import math

import torch

from tubelet.models.condinst.losses import (centerness_loss, dice_loss, giou_loss, ltrb_giou,
                                            mask_loss, sigmoid_focal_loss)

LOG2 = math.log(2)


def test_focal_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0, math.log(3)]])
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    # p = 0.5, y = 1: 0.25 * (1 - 0.5)^2 * log 2
    # p = 0.5, y = 0: 0.75 * 0.5^2 * log 2
    # p = 0.75, y = 1: 0.25 * 0.25^2 * -log 0.75
    expect = 0.25 * 0.25 * LOG2 + 0.75 * 0.25 * LOG2 + 0.25 * 0.0625 * -math.log(0.75)
    assert math.isclose(float(sigmoid_focal_loss(logits, targets)), expect, rel_tol=1e-5)
    # gamma 0, no alpha: plain BCE sum
    assert math.isclose(float(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0)),
                        2 * LOG2 - math.log(0.75), rel_tol=1e-5)


def test_giou_by_hand():
    pred = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    target = torch.tensor([[2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    # 2x2 box centred in a 4x4 box: IoU 4/16, enclosing = union -> 0.25
    # boxes [0,2]^2 and [-2,0]^2 from the same point: IoU 0, union 8, enclosing 16 -> -0.5
    assert torch.allclose(ltrb_giou(pred, target), torch.tensor([0.25, -0.5, 1.0]), atol=1e-6)
    assert math.isclose(float(giou_loss(pred, target)), 0.75 + 1.5 + 0.0, rel_tol=1e-6)
    w = torch.tensor([0.5, 2.0, 7.0])
    assert math.isclose(float(giou_loss(pred, target, w)), 0.375 + 3.0, rel_tol=1e-6)


def test_giou_overlap_by_hand():
    # pred [-1,1]x[-1,1] (l=t=r=b=1), target [0,3]x[0,1] (l=0, t=0, r=3, b=1)
    # inter [0,1]x[0,1] = 1; union 4 + 3 - 1 = 6; enclosing [-1,3]x[-1,1] = 8
    g = ltrb_giou(torch.tensor([[1.0, 1.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.0, 3.0, 1.0]]))
    assert math.isclose(float(g), 1 / 6 - 2 / 8, rel_tol=1e-5)


def test_centerness_bce_by_hand():
    loss = centerness_loss(torch.tensor([0.0, math.log(3)]), torch.tensor([0.5, 1.0]))
    assert math.isclose(float(loss), LOG2 - math.log(0.75), rel_tol=1e-6)


def test_dice_by_hand():
    probs = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # 1 - 2*1/(2+1) = 1/3; 1 - 2*1/(0.5+2) = 0.2; empty vs empty: 1 (no credit)
    loss = dice_loss(probs.reshape(3, 2, 2), target.reshape(3, 2, 2))
    assert torch.allclose(loss, torch.tensor([1 / 3, 0.2, 1.0]), atol=1e-5)
    assert float(dice_loss(target, target)[0]) < 1e-5


def test_mask_loss_dice_plus_bce_by_hand():
    # two 1x2 instances; logits 0 -> p = 0.5, log 3 -> p = 0.75
    logits = torch.tensor([[[0.0, math.log(3)]], [[0.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    # dice: 1 - 2*0.5/(0.25+0.5625+1) = 1 - 1/1.8125; 1 - 2*1/(0.5+2) = 0.2
    dice = ((1 - 1 / 1.8125) + 0.2) / 2
    # BCE per pixel: log 2; -log(1 - 0.75) = log 4; log 2; log 2 -> mean 5 log 2 / 4
    bce = 5 * LOG2 / 4
    assert math.isclose(float(mask_loss(logits, target)), dice, rel_tol=1e-5)
    assert math.isclose(float(mask_loss(logits, target, 0.5)), dice + 0.5 * bce, rel_tol=1e-5)


def test_mask_loss_bce_recovers_a_collapsed_head():
    # every probability near 0 (logit -20): dice is 1 and has no gradient left; BCE pulls the
    # positive pixels up with gradient (p - 1) / #pixels, about -1/8 each here
    target = torch.zeros(2, 2, 2)
    target[:, 0] = 1.0
    for w, expect in ((0.0, 0.0), (1.0, -1 / 8)):
        logits = torch.full((2, 2, 2), -20.0, requires_grad=True)
        loss = mask_loss(logits, target, w)
        assert math.isclose(float(loss.detach()), 1.0 + w * 0.5 * 20, rel_tol=1e-4)
        loss.backward()
        g = logits.grad
        assert abs(float(g[:, 0].mean()) - expect) < 1e-6 and float(g[:, 1].abs().max()) < 1e-6
