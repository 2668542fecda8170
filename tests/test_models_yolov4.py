"""The YOLOv4+1seg detector end to end: both presets build and run, training losses, inference
outputs and the letterbox mapping back to the frame, class read-out."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from tubelet.models.condinst import Detections
from tubelet.models.yolov4 import (LOSS_NAMES, HeadOutputs, Proposals, YOLOv4Seg, YOLOv4SegConfig,
                                   decode_level, letterbox_params, select_proposals,
                                   unletterbox_boxes)




def _batch(h=64, w=96):
    """Two images: one with two rectangles, one empty."""
    masks = torch.zeros(2, h, w, dtype=torch.bool)
    masks[0, 8:40, 10:50] = True
    masks[1, 28:60, 56:90] = True
    img = torch.randn(2, 3, h, w)
    t0 = {"boxes": torch.tensor([[10.0, 8, 50, 40], [56, 28, 90, 60]]), "labels": torch.tensor([0, 2]),
          "masks": masks}
    t1 = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
          "masks": torch.zeros(0, h, w, dtype=torch.bool)}
    return img, [t0, t1]


def test_presets():
    p = YOLOv4SegConfig.paper()
    assert (p.width, p.depth, p.input_size, p.anchors_per_level * 4) == (1.0, 1.0, 416, 16)
    assert (p.conf_thr, p.nms_thr, p.max_proposals) == (0.5, 0.3, 50)
    c = YOLOv4SegConfig.cpu(num_classes=5)
    assert c.num_classes == 5 and c.width == 0.25 and 192 <= c.input_size <= 256
    assert {f.name for f in dataclasses.fields(c)} == set(vars(c))


def test_paper_config_forward_shapes():
    torch.manual_seed(0)
    model = YOLOv4Seg(YOLOv4SegConfig.paper(num_classes=40)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model.forward_heads(x)
    # [B, A, H/s, W/s, 4 + 1 + C] per level, embeddings [B, 256, H/s, W/s]
    assert [tuple(r.shape) for r in out.raw] == [(1, 4, 64 // s, 64 // s, 45) for s in (4, 8, 16, 32)]
    assert [tuple(e.shape) for e in out.embeds] == [(1, 256, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    # random weights: let proposals through, but few (the 256-wide mask subnet costs 1.8 GMAC each)
    model.cfg.conf_thr, model.cfg.max_proposals = 0.0, 3
    det = model.predict(x)[0]
    n = len(det)
    assert n == 3 and det.masks.shape == (n, 64, 64) and det.class_probs.shape == (n, 40)


def test_cpu_config_training_losses_and_gradients():
    torch.manual_seed(0)
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3)).train()
    img, targets = _batch()
    terms = model.compute_losses(model.forward_heads(img), targets)
    assert terms.raw.shape == terms.valid.shape == terms.terms.shape == (4, 4)
    assert terms.valid[:, LOSS_NAMES.index("conf")].all()  # negatives exist on every level
    # classes are labelled at centroid cells on every level
    assert terms.valid[:, LOSS_NAMES.index("cls")].all()
    assert terms.valid[:, LOSS_NAMES.index("box")].any()
    assert terms.valid[:, LOSS_NAMES.index("mask")].any()
    # untrained: w = 0, so each valid term is raw / 2
    assert torch.allclose(terms.terms, torch.where(terms.valid, terms.raw / 2, 0.0))
    out = model(img, targets)
    assert set(out) == {f"{k}_{n}" for n in LOSS_NAMES for k in ("loss", "raw")}
    raw = torch.where(terms.valid, terms.raw, 0.0).sum(0)
    for j, n in enumerate(LOSS_NAMES):  # logging values: unweighted, detached
        assert torch.allclose(out[f"raw_{n}"], raw[j]) and not out[f"raw_{n}"].requires_grad
    losses = {k: v for k, v in out.items() if k.startswith("loss")}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    w_grad = model.balance.log_vars.grad
    assert (w_grad[~terms.valid] == 0).all() and (w_grad[terms.valid] != 0).all()
    for name in ("backbone.stem.0.weight", "heads.0.1.weight", "embeds.3.0.weight",
                 "mask_head.predictor.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_p2_off_ablation_has_three_levels():
    torch.manual_seed(0)
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3, neck_channels=(32, 64, 128)))
    assert model.strides == (8, 16, 32) and model.anchors.shape == (3, 4, 2)
    img, targets = _batch()
    out = model.forward_heads(img)
    assert [tuple(r.shape[2:4]) for r in out.raw] == [(8, 12), (4, 6), (2, 3)]
    t = model.compute_losses(out, targets)
    assert t.terms.shape == (3, 4) and torch.isfinite(t.terms).all()
    assert len(model.eval()(img)) == 2


def test_fixed_weights_ablation():
    torch.manual_seed(0)
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3, balance_losses=False,
                                          fixed_loss_weights=(1.0, 2.0, 0.0, 1.0)))
    img, targets = _batch()
    t = model.compute_losses(model.forward_heads(img), targets)
    expected = torch.where(t.valid, t.raw * torch.tensor([1.0, 2.0, 0.0, 1.0]), 0.0)
    assert torch.allclose(t.terms, expected)


def test_cpu_config_inference_and_letterbox_mapping():
    torch.manual_seed(0)
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3, input_size=64, conf_thr=0.0)).eval()
    img = torch.randn(1, 3, 64, 64)
    det = model(img)[0]
    assert isinstance(det, Detections)
    n = len(det)
    assert 0 < n <= 50 and det.masks.shape == (n, 64, 64) and det.masks.dtype == torch.bool
    assert det.boxes.shape == (n, 4) and det.features.shape == (n, 32)
    assert torch.allclose(det.class_probs.sum(1), torch.ones(n))
    assert torch.equal(det.labels, det.class_probs.argmax(1))
    assert (det.scores[1:] <= det.scores[:-1]).all()
    # the same input declared as the letterbox of a 30 x 60 frame: boxes and masks come back in it
    lb = letterbox_params((30, 60), 64)
    back = model.predict(img, letterboxes=[lb])[0]
    assert back.masks.shape == (n, 30, 60)
    assert torch.allclose(back.boxes, unletterbox_boxes(det.boxes, lb), atol=1e-4)
    assert (back.boxes[:, 2] <= 60).all() and (back.boxes[:, 3] <= 30).all()
    probs = model.predict(img, mask_probs=True)[0].masks
    assert probs.dtype == torch.float32 and torch.equal(probs > 0.5, det.masks)
    # predict from train mode uses the running BatchNorm statistics and restores the mode
    model.train()
    again = model.predict(img)[0]
    assert model.training and torch.equal(again.boxes, det.boxes)


def test_no_detection_above_threshold_gives_empty_result():
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3, conf_thr=1.1)).eval()
    det = model(torch.randn(1, 3, 64, 64))[0]
    assert len(det) == 0 and det.masks.shape == (0, 64, 64) and det.class_probs.shape == (0, 3)


def test_anchors_live_in_the_state_dict():
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3))
    new = torch.arange(32.0).reshape(4, 4, 2) + 1
    model.set_anchors(new)
    other = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3))
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.anchors, new)
    with pytest.raises(ValueError):
        YOLOv4Seg(YOLOv4SegConfig.cpu(anchors=((10, 10),)))


@pytest.mark.parametrize("class_at", ["box_center", "mask_centroid"])
def test_class_read_out_cell(class_at):
    """A proposal from level 1 (stride 8, an 8 x 8 grid for a 64 x 64 input), anchor 2, box
    (8, 16, 24, 24): its centre (16, 20) is in cell (x 2, y 2). Its mask is on only in the box's
    left quarter: centroid x = 8 + 0.125 x 16 = 10, cell (x 1, y 2). The class is read at the first
    cell for ``box_center`` and at the second for ``mask_centroid``."""
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3, class_at=class_at))
    raw = [torch.zeros(1, 4, 64 // s, 64 // s, 8) for s in (4, 8, 16, 32)]
    raw[1][0, 2, 2, 2, 5 + 0] = 9.0  # class 0 at the box-centre cell [anchor 2, y 2, x 2]
    raw[1][0, 2, 2, 1, 5 + 1] = 9.0  # class 1 at the centroid cell [anchor 2, y 2, x 1]
    h, w = raw[1].shape[2:4]
    props = Proposals(torch.tensor([[8.0, 16, 24, 24]]), torch.tensor([0.9]), torch.tensor([1]),
                      torch.tensor([2 * h * w + 2 * w + 2]))  # flat (anchor, y, x) index
    probs = torch.zeros(1, 4, 4)
    probs[0, :, 0] = 1
    cp = model._read_classes(HeadOutputs(raw, []), 0, props, probs)
    expected = 0 if class_at == "box_center" else 1
    assert cp.argmax(1).item() == expected and cp[0, expected] > 0.99


def test_proposals_match_dense_decoding_reference():
    """The candidate-only decoding of ``_proposals`` against decoding every anchor of every level
    (``decode_level``) followed by the same two-stage NMS."""
    torch.manual_seed(1)
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3, pre_nms_topk=300)).eval()
    with torch.no_grad():
        out = model.forward_heads(torch.randn(2, 3, 64, 64))
        for r in out.raw:  # spread the confidences so the threshold and top-k both bite
            r[..., 4] = torch.randn(r.shape[:-1]) * 3
        for b in range(2):
            props = model._proposals(out, b, 0.4, 20)
            boxes = [decode_level(r[b:b + 1, ..., :4], a, s)[0].reshape(-1, 4)
                     for r, a, s in zip(out.raw, model.anchors, model.strides)]
            scores = [torch.sigmoid(r[b, ..., 4]).reshape(-1) for r in out.raw]
            ref = select_proposals(boxes, scores, 0.4, 0.3, 20, 300)
            assert len(props) == 20
            assert torch.equal(props.levels, ref.levels) and torch.equal(props.index, ref.index)
            assert torch.allclose(props.boxes, ref.boxes, atol=1e-4)
            assert torch.equal(props.scores, ref.scores)


def test_degenerate_boxes_are_dropped_from_the_targets():
    torch.manual_seed(0)
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3))
    img, targets = _batch()
    t = dict(targets[0])
    t["boxes"] = torch.cat([t["boxes"], torch.tensor([[5.0, 5, 5, 9]])])  # zero width
    t["labels"] = torch.cat([t["labels"], torch.tensor([1])])
    t["masks"] = torch.cat([t["masks"], torch.zeros(1, 64, 96, dtype=torch.bool)])
    out = model(img, [t, targets[1]])
    assert all(torch.isfinite(v) for v in out.values())


def test_every_batchnorm_folds_for_cpu_inference():
    """The shared ``fuse_conv_bn`` finds every Darknet conv-BN pair (they are ``nn.Sequential``)."""
    import copy

    from tubelet.models.fuse import fuse_conv_bn
    torch.manual_seed(0)
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=3))
    with torch.no_grad():  # non-trivial running statistics
        model.forward_heads(torch.randn(2, 3, 64, 64))
    model.eval()
    fused = copy.deepcopy(model)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert fuse_conv_bn(fused) == n_bn
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(model.forward_heads(x).raw, fused.forward_heads(x).raw):
            assert torch.allclose(a, b, atol=1e-4)
