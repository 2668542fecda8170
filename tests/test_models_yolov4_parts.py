"""YOLOv4+1seg pieces: CSPDarknet53, SPP/PAN-p2, k-means anchors, δ-map coding, two-stage NMS,
letterbox. Expected numbers are derived by hand in the comments."""
from __future__ import annotations

import math

import pytest
import torch

from tubelet.models.yolov4 import (SPP, CSPDarknet53, PAN, decode, decode_level, default_anchors,
                                   encode, kmeans_anchors, letterbox_boxes, letterbox_images,
                                   letterbox_masks, letterbox_params, per_level_nms,
                                   select_proposals, split_anchors, unletterbox_boxes,
                                   unletterbox_masks, wh_iou)




# ---------------------------------------------------------------- backbone and neck
def test_cspdarknet_small_shapes_and_depth():
    net = CSPDarknet53(width=0.25, depth=0.33)
    out = net(torch.zeros(1, 3, 70, 100))
    # widths 128/256/512/1024 x 0.25; sizes ceil(70/s), ceil(100/s)
    assert net.out_channels == {"c2": 32, "c3": 64, "c4": 128, "c5": 256}
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "c2": (1, 32, 18, 25), "c3": (1, 64, 9, 13), "c4": (1, 128, 5, 7), "c5": (1, 256, 3, 4)}
    # residual blocks 1-2-8-8-4 x 0.33 rounded, at least 1 -> 1-1-3-3-1 (main = in, blocks, out)
    assert [len(s.main) - 2 for s in net.stages] == [1, 1, 3, 3, 1]
    assert isinstance(net.stem[2], torch.nn.Mish)


def test_cspdarknet_full_is_darknet53_sized():
    net = CSPDarknet53()
    assert net.out_channels == {"c2": 128, "c3": 256, "c4": 512, "c5": 1024}
    assert [len(s.main) - 2 for s in net.stages] == [1, 2, 8, 8, 4]
    # stage 1 keeps both halves at 64 channels and narrows its residual to 32 (Darknet's cfg)
    assert net.stages[0].bypass[0].out_channels == 64
    assert net.stages[0].main[1].body[0][0].out_channels == 32
    # YOLOv4 Table 1 lists CSPDarknet53 at 27.6 M parameters including its 1000-way classifier
    # (1024 * 1000 + 1000 = 1.03 M); the trunk alone is about 26.6 M
    n = sum(p.numel() for p in net.parameters()) / 1e6
    assert 26.0 < n < 27.0


def test_panet_p2_levels_and_concatenation():
    chans = {"c2": 8, "c3": 16, "c4": 24, "c5": 32}
    neck = PAN(chans, channels=(4, 8, 12, 16), block_convs=3)
    # an input of 80 x 84 gives c2..c5 of 20 x 21, 10 x 11, 5 x 6, 3 x 3 (ceil halving)
    sizes = ((20, 21), (10, 11), (5, 6), (3, 3))
    feats = {k: torch.randn(2, c, *hw) for (k, c), hw in zip(chans.items(), sizes)}
    out = neck(feats)
    assert [tuple(o.shape) for o in out] == [(2, 4, 20, 21), (2, 8, 10, 11), (2, 12, 5, 6),
                                             (2, 16, 3, 3)]
    assert neck.strides == {"n2": 4, "n3": 8, "n4": 16, "n5": 32}
    # aggregation by concatenation: each block's first 1x1 conv reads 2 n_l channels
    assert neck.td_block["2"][0][0].in_channels == 8
    assert neck.bu_block["5"][0][0].in_channels == 32
    # SPP concatenates its input with 3 pools: 4 x 16 channels into the post block
    assert neck.spp.post[0][0].in_channels == 64
    # three widths: YOLOv4's own n3..n5 (c2 is not read)
    neck3 = PAN(chans, channels=(8, 12, 16), block_convs=1)
    del feats["c2"]
    assert [tuple(o.shape) for o in neck3(feats)] == [(2, 8, 10, 11), (2, 12, 5, 6), (2, 16, 3, 3)]
    assert neck3.strides == {"n3": 8, "n4": 16, "n5": 32}


def test_spp_cascade_equals_direct_pools():
    # max-pools 5, 9, 13 (stride 1, -inf padding) equal 5, 5 o 5, 5 o 5 o 5
    torch.manual_seed(0)
    spp = SPP(4, 4)
    x = torch.randn(2, 4, 7, 11)
    y = spp.pre(x)
    direct = torch.cat([y] + [torch.nn.functional.max_pool2d(y, k, 1, k // 2) for k in (5, 9, 13)], 1)
    assert spp.cascade and torch.equal(spp(x), spp.post(direct))
    assert not SPP(4, 4, kernels=(3, 7)).cascade


# ---------------------------------------------------------------- anchors
def test_wh_iou_hand():
    # (2, 2) vs (4, 1) at a common corner: inter 2 x 1 = 2, union 4 + 4 - 2 = 6
    iou = wh_iou(torch.tensor([[2.0, 2.0]]), torch.tensor([[4.0, 1.0], [2.0, 2.0]]))
    assert torch.allclose(iou, torch.tensor([[1 / 3, 1.0]]))


def _two_clusters():
    a = torch.tensor([[9.0, 20], [11, 20], [10, 19], [10, 21], [10, 20]])
    b = torch.tensor([[98.0, 50], [102, 50], [100, 48], [100, 52]])
    return torch.cat([b, a])  # shuffled order on purpose


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_kmeans_two_tight_clusters_give_their_centres(seed):
    c = kmeans_anchors(_two_clusters(), 2, seed=seed)
    # cluster means, sorted by area: (10, 20) then (100, 50)
    assert torch.allclose(c, torch.tensor([[10.0, 20.0], [100.0, 50.0]]), atol=1e-6)


def test_kmeans_deterministic_and_sorted():
    g = torch.Generator().manual_seed(3)
    wh = torch.rand(200, 2, generator=g) * 100 + 2
    a, b = kmeans_anchors(wh, 16, seed=5), kmeans_anchors(wh, 16, seed=5)
    assert torch.equal(a, b)
    area = a[:, 0] * a[:, 1]
    assert (area[1:] >= area[:-1]).all()
    levels = split_anchors(a, 4)
    assert levels.shape == (4, 4, 2)
    assert torch.equal(levels.reshape(16, 2), a)  # the 4 smallest on the stride-4 level
    with pytest.raises(ValueError):
        kmeans_anchors(wh[:3], 4)


def test_default_anchors_scale_with_stride():
    a = default_anchors((4, 8, 16, 32), 4)
    assert a.shape == (4, 4, 2)
    assert torch.allclose(a[1], 2 * a[0]) and torch.allclose(a[0, 0], torch.tensor([8.0, 8.0]))


# ---------------------------------------------------------------- δ-map coding
def test_encode_hand_case():
    # centre (20, 12), size 16 x 8, stride 8, cell (2, 1), anchor (8, 8):
    # δ = (20/8 - 2, 12/8 - 1, log(16/8), log(8/8)) = (0.5, 0.5, log 2, 0)
    d = encode(torch.tensor([12.0, 8, 28, 16]), torch.tensor([8.0, 8]), torch.tensor([2.0, 1]), 8)
    assert torch.allclose(d, torch.tensor([0.5, 0.5, math.log(2), 0.0]))


def test_encode_decode_round_trip():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 300
    wh = torch.rand(50, 2, generator=g) * 120 + 1
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
    stride = 16
    grid = torch.floor(xy / stride)  # the cell holding each centre
    anchors = torch.rand(50, 2, generator=g) * 100 + 4
    d = encode(boxes, anchors, grid, stride)
    assert ((d[:, :2] >= 0) & (d[:, :2] < 1)).all()
    assert torch.allclose(decode(d, anchors, grid, stride), boxes, atol=1e-4)


def test_decode_level_zero_output_is_anchor_at_cell_centre():
    raw = torch.zeros(1, 2, 3, 4, 4)  # [B, A, H, W, 4]; σ(0) = 0.5, exp(0) = 1
    anchors = torch.tensor([[10.0, 20.0], [6.0, 6.0]])
    boxes = decode_level(raw, anchors, 8)
    # anchor 0 at row 2, column 1: centre ((1 + 0.5) 8, (2 + 0.5) 8) = (12, 20), size 10 x 20
    assert torch.allclose(boxes[0, 0, 2, 1], torch.tensor([7.0, 10, 17, 30]))
    assert torch.allclose(boxes[0, 1, 0, 3], torch.tensor([25.0, 1, 31, 7]))


# ---------------------------------------------------------------- NMS
def test_nms_per_level_keeps_both_then_across_levels_removes_one():
    # A on level 0 and B on level 1 overlap with IoU 9 x 10 / (100 + 100 - 90) = 0.818 > 0.3
    boxes = [torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]), torch.tensor([[1.0, 0, 11, 10]])]
    scores = [torch.tensor([0.9, 0.4]), torch.tensor([0.8])]  # 0.4 < confidence 0.5
    keep = per_level_nms(boxes, scores, conf_thresh=0.5, nms_thresh=0.3)
    assert [k.tolist() for k in keep] == [[0], [0]]  # both survive their own level
    p = select_proposals(boxes, scores, conf_thresh=0.5, nms_thresh=0.3, max_proposals=50)
    assert p.levels.tolist() == [0] and p.index.tolist() == [0]
    assert torch.equal(p.boxes, torch.tensor([[0.0, 0, 10, 10]]))
    assert p.scores.tolist() == pytest.approx([0.9])


def test_nms_within_level_and_cap():
    # same level: IoU 0.818 > 0.3 removes the weaker; disjoint boxes survive; cap at 2
    b = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    s = torch.tensor([0.6, 0.9, 0.7, 0.55])
    p = select_proposals([b], [s], 0.5, 0.3, max_proposals=2)
    assert p.index.tolist() == [1, 2]
    # class-aware: different labels do not suppress each other
    p = select_proposals([b], [s], 0.5, 0.3, 50, labels=[torch.tensor([0, 1, 0, 0])])
    assert sorted(p.index.tolist()) == [0, 1, 2, 3]
    empty = select_proposals([b], [s * 0], 0.5, 0.3, 50)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)


# ---------------------------------------------------------------- letterbox
def test_letterbox_params_hand():
    lb = letterbox_params((100, 200), 400)  # scale 2 -> 200 x 400, padded 100 on top
    assert lb.new_size == (200, 400) and lb.pad == (100, 0) and lb.scale == (2.0, 2.0)
    lb = letterbox_params((360, 640), (192, 320))  # r = min(0.533, 0.5) = 0.5 -> 180 x 320
    assert lb.new_size == (180, 320) and lb.pad == (6, 0)
    assert torch.allclose(letterbox_boxes(torch.tensor([[0.0, 0, 640, 360]]), lb),
                          torch.tensor([[0.0, 6, 320, 186]]))


def test_letterbox_round_trip_boxes_masks_images():
    lb = letterbox_params((100, 200), 400)
    boxes = torch.tensor([[10.0, 5, 50, 95], [150.5, 20.25, 199, 60]])
    assert torch.allclose(unletterbox_boxes(letterbox_boxes(boxes, lb), lb), boxes)
    masks = torch.zeros(2, 100, 200, dtype=torch.bool)
    masks[0, 5:95, 10:50] = True
    masks[1, 20:60, 151:199] = True
    masks[1, 33, 7] = True  # a single pixel survives the exact 2x nearest round trip
    up = letterbox_masks(masks, lb)
    assert up.shape == (2, 400, 400) and not up[:, :100].any() and not up[:, 300:].any()
    assert torch.equal(unletterbox_masks(up, lb), masks)
    img = torch.rand(1, 3, 100, 200)
    x = letterbox_images(img, lb)
    assert x.shape == (1, 3, 400, 400) and (x[..., :100, :] == 0.5).all()
    # odd scale: boxes still invert exactly (per-axis scales are kept)
    lb = letterbox_params((97, 211), 256)
    assert torch.allclose(unletterbox_boxes(letterbox_boxes(boxes, lb), lb), boxes, atol=1e-4)
    probs = letterbox_masks(masks.float(), lb)
    assert probs.dtype == torch.float32 and unletterbox_masks(probs, lb).shape == (2, 97, 211)
