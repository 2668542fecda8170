"""YOLOv4+1seg heads and training pieces: adaptive feature pooling, mask subnet and pasting,
target assignment, the four losses and automatic loss balancing (values derived by hand)."""
from __future__ import annotations

import math

import pytest
import torch

from tubelet.models.yolov4 import (AutoLossBalance, MaskSubnet, adaptive_feature_pool,
                                   assign_targets, box_loss, class_loss, conf_loss, ignore_mask,
                                   instance_centroids, mask_centroids, mask_loss, match_proposals,
                                   paste_masks_in_boxes, roi_mask_targets)




# ---------------------------------------------------------------- adaptive feature pooling
def _levels(values, e=3, size=64):
    """Four constant maps, one per stride 4..32, of an image of size x size."""
    return [torch.full((2, e, size // s, size // s), v) for v, s in zip(values, (4, 8, 16, 32))]


def test_pool_constant_maps_give_the_constant():
    boxes = torch.tensor([[4.0, 4, 40, 30], [10, 12, 60, 60], [0, 0, 64, 64]])
    bidx = torch.tensor([0, 1, 1])
    out = adaptive_feature_pool(_levels([2.5] * 4), (4, 8, 16, 32), boxes, bidx, 7)
    assert out.shape == (3, 3, 7, 7)
    assert torch.allclose(out, torch.full_like(out, 2.5))
    # different constant per level: max picks the largest, sum adds them
    feats = _levels([1.0, 4.0, 2.0, 3.0])
    strides = (4, 8, 16, 32)
    assert torch.allclose(adaptive_feature_pool(feats, strides, boxes, bidx, 7), torch.tensor(4.0))
    assert torch.allclose(adaptive_feature_pool(feats, strides, boxes, bidx, 7, fusion="sum"),
                          torch.tensor(10.0))


def test_pool_ramp_gives_bin_centres():
    # one stride-1 level whose value at column j is the pixel centre j + 0.5: aligned RoIAlign then
    # returns each bin's mean x, i.e. its centre; box x 4..12 in 4 bins -> 5, 7, 9, 11
    f = (torch.arange(16.0) + 0.5).expand(1, 1, 16, 16).contiguous()
    out = adaptive_feature_pool([f], (1,), torch.tensor([[4.0, 2, 12, 10]]), torch.tensor([0]), 4)
    assert torch.allclose(out[0, 0], torch.tensor([5.0, 7, 9, 11]).expand(4, 4))


def test_mask_subnet_shapes():
    net = MaskSubnet(channels=8, num_convs=2)
    assert net(torch.randn(5, 8, 14, 14)).shape == (5, 1, 28, 28)
    assert net(torch.randn(0, 8, 14, 14)).shape == (0, 1, 28, 28)


def test_paste_uniform_mask_fills_exactly_the_box():
    out = paste_masks_in_boxes(torch.ones(1, 28, 28), torch.tensor([[2.0, 3, 6, 8]]), (10, 10))
    expected = torch.zeros(1, 10, 10, dtype=torch.bool)
    expected[0, 3:8, 2:6] = True  # pixels whose centre lies inside the box
    assert torch.equal(out, expected)
    # a box partly outside the frame and a degenerate box
    out = paste_masks_in_boxes(torch.ones(2, 4, 4), torch.tensor([[-5.0, -5, 3, 3], [4, 4, 4, 9]]),
                               (6, 6))
    assert out[0].sum() == 9 and out[0, :3, :3].all() and not out[1].any()


def test_mask_centroids_and_roi_targets():
    probs = torch.zeros(1, 4, 4)
    probs[0, :2, :2] = 1  # top-left quadrant: mean cell centre (0.125 + 0.375) / 2 = 0.25
    c = mask_centroids(probs, torch.tensor([[0.0, 0, 8, 8]]))
    assert torch.allclose(c, torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(mask_centroids(torch.zeros(1, 4, 4), torch.tensor([[0.0, 0, 8, 4]])),
                          torch.tensor([[4.0, 2.0]]))  # empty -> box centre
    m = torch.zeros(1, 20, 20, dtype=torch.bool)
    m[0, 5:15, 2:10] = True
    t = roi_mask_targets(m, torch.tensor([[2.0, 5, 10, 15]]), 8)
    assert torch.equal(t, torch.ones(1, 8, 8))
    t = roi_mask_targets(m, torch.tensor([[2.0, 5, 18, 15]]), 8)  # box twice as wide: left half on
    assert torch.equal(t[0, :, :4], torch.ones(8, 4)) and not t[0, :, 4:].any()


# ---------------------------------------------------------------- targets
ANCHORS = torch.tensor([[[4.0, 4]], [[16, 16]], [[32, 32]], [[64, 64]]])  # [L=4, A=1, 2]
STRIDES = (4, 8, 16, 32)
SIZES = [(16, 16), (8, 8), (4, 4), (2, 2)]  # a 64 x 64 input


def test_assign_best_anchor_and_extra_by_shape_iou():
    box = torch.tensor([[10.0, 10, 26, 26]])  # 16 x 16, centre (18, 18)
    lab = torch.tensor([3])
    t = assign_targets(ANCHORS, STRIDES, SIZES, [box], [lab], [torch.tensor([[18.0, 18]])], None)
    # best shape IoU: the 16 x 16 anchor of level 1 (IoU 1); cell floor(18 / 8) = 2
    assert [int(x.positive.sum()) for x in t] == [0, 1, 0, 0]
    assert t[1].positive[0, 0, 2, 2] and t[1].gt_index[0, 0, 2, 2] == 0
    # δ = (18/8 - 2, 18/8 - 2, log 1, log 1)
    assert torch.allclose(t[1].deltas[0, 0, 2, 2], torch.tensor([0.25, 0.25, 0, 0]))
    # with the YOLOv4 threshold 0.213 the 32 x 32 anchor (IoU 256 / 1024 = 0.25) joins on level 2,
    # cell floor(18 / 16) = 1; the 4 x 4 one (IoU 16 / 256) does not
    t = assign_targets(ANCHORS, STRIDES, SIZES, [box], [lab], [torch.tensor([[18.0, 18]])], 0.213)
    assert [int(x.positive.sum()) for x in t] == [0, 1, 1, 0] and t[2].positive[0, 0, 1, 1]
    half = math.log(0.5)
    assert torch.allclose(t[2].deltas[0, 0, 1, 1], torch.tensor([0.125, 0.125, half, half]))
    # the class sits at the centroid cell of every level, nowhere else
    for x, s in zip(t, STRIDES):
        c = 18 // s
        assert x.classes[0, c, c] == 3 and (x.classes >= 0).sum() == 1


def test_assign_collision_smaller_wins_and_empty_image():
    big = torch.tensor([9.0, 9, 27, 27])    # 18 x 18, centre (18, 18)
    small = torch.tensor([11.0, 11, 25, 25])  # 14 x 14, centre (18, 18): same anchor and cell
    boxes = torch.stack([small, big])
    cents = torch.tensor([[18.0, 18], [18, 18]])
    t = assign_targets(ANCHORS, STRIDES, SIZES, [boxes, torch.zeros(0, 4)],
                       [torch.tensor([0, 1]), torch.zeros(0, dtype=torch.long)],
                       [cents, torch.zeros(0, 2)], None)
    assert t[1].gt_index[0, 0, 2, 2] == 0 and t[1].classes[0, 2, 2] == 0  # index 0 = the small one
    assert not t[1].positive[1].any() and (t[1].classes[1] == -1).all()


def test_instance_centroids_and_ignore_and_match():
    m = torch.zeros(2, 10, 10, dtype=torch.bool)
    m[0, 0:2, 0:4] = True  # centroid (2, 1)
    boxes = torch.tensor([[0.0, 0, 4, 2], [2, 2, 6, 8]])
    assert torch.allclose(instance_centroids(m, boxes), torch.tensor([[2.0, 1], [4, 5]]))
    pred = torch.zeros(1, 1, 1, 2, 4)
    pred[0, 0, 0, 0] = torch.tensor([0.0, 0, 4, 2])  # = ground truth 0
    pred[0, 0, 0, 1] = torch.tensor([0.0, 0, 4, 4])  # IoU 0.5
    assert ignore_mask(pred, [boxes], 0.7).tolist() == [[[[True, False]]]]
    props = torch.tensor([[0.0, 0, 4, 4], [2, 2, 6, 7], [50, 50, 60, 60]])
    assert match_proposals(props, boxes, 0.5).tolist() == [0, 1, -1]


# ---------------------------------------------------------------- losses
def test_losses_hand_values():
    # smooth L1 (beta 1): |2| -> 2 - 0.5 = 1.5, |0.5| -> 0.5 x 0.25 = 0.125, zeros -> 0
    lb, ok = box_loss(torch.tensor([[0.5, 0.5, 0, 0]]), torch.tensor([[0.5, 0.5, 2, 0.5]]))
    assert ok and lb.item() == pytest.approx(1.625)
    assert box_loss(torch.zeros(0, 4), torch.zeros(0, 4))[1] is False
    # logits 0 -> BCE log 2 each; 3 anchors counted (1 positive, 2 negatives), 1 ignored; / 2
    logits = torch.zeros(1, 1, 2, 2)
    pos = torch.tensor([[[[True, False], [False, False]]]])
    ign = torch.tensor([[[[False, True], [False, False]]]])
    lc, _ = conf_loss(logits, pos, ign, normalizer=2)
    assert lc.item() == pytest.approx(3 * math.log(2) / 2)
    # logits 0 over C = 4 -> CE log 4, only at labelled cells
    cls = torch.full((1, 2, 2), -1)
    cls[0, 1, 0] = 2
    lk, ok = class_loss(torch.zeros(1, 3, 2, 2, 4), cls)
    assert ok and lk.item() == pytest.approx(math.log(4))
    big = torch.zeros(1, 1, 2, 2, 4)
    big[0, 0, 1, 0, 2] = 50.0  # confident and right at the labelled cell
    big[0, 0, 0, 0, 0] = 50.0  # unlabelled cell: no loss
    assert class_loss(big, cls)[0].item() == pytest.approx(0.0, abs=1e-6)
    assert class_loss(big, torch.full((1, 2, 2), -1))[1] is False
    lm, ok = mask_loss(torch.zeros(2, 3, 3), torch.ones(2, 3, 3))
    assert ok and lm.item() == pytest.approx(math.log(2))


def test_auto_loss_balance_value_and_gradient_by_hand():
    bal = AutoLossBalance(2, 2)
    w = torch.tensor([[0.0, math.log(2)], [-1.0, 0.5]])
    with torch.no_grad():
        bal.log_vars.copy_(w)
    losses = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    terms = bal(losses)
    # 1/2 (exp(-w) L + w): 1/2 (1 + 0), 1/2 (1 + log 2), 1/2 (3e - 1), 1/2 (4 exp(-0.5) + 0.5)
    expected = [[0.5, 0.5 * (1 + math.log(2))],
                [0.5 * (3 * math.e - 1), 0.5 * (4 * math.exp(-0.5) + 0.5)]]
    assert torch.allclose(terms, torch.tensor(expected))
    terms.sum().backward()
    # dL/dw = 1/2 (1 - exp(-w) L); dL/dL_ij = 1/2 exp(-w)
    grad_w = [[0.0, 0.0], [0.5 * (1 - 3 * math.e), 0.5 * (1 - 4 * math.exp(-0.5))]]
    assert torch.allclose(bal.log_vars.grad, torch.tensor(grad_w), atol=1e-6)
    assert torch.allclose(losses.grad, 0.5 * torch.exp(-w))


def test_auto_loss_balance_skips_invalid_terms():
    bal = AutoLossBalance(1, 3, init=0.0)
    losses = torch.tensor([[2.0, 0.0, 1.0]])
    valid = torch.tensor([[True, False, True]])
    total = bal(losses, valid).sum()
    assert total.item() == pytest.approx(0.5 * 2 + 0.5 * 1)
    total.backward()
    # the invalid term contributes neither value nor gradient (it would push w to -inf)
    assert torch.allclose(bal.log_vars.grad, torch.tensor([[0.5 * (1 - 2), 0.0, 0.0]]))
