"""The CondInst module end to end: shapes, losses, inference, and a one-image overfit."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from tubelet.models.condinst import CondInst, CondInstConfig, Detections



TINY = dict(fpn_channels=32, num_convs=1, mask_branch_channels=16, mask_branch_convs=1)


def _scene(h=64, w=96):
    """One image with two filled rectangles (red, green) on a dark background."""
    masks = torch.zeros(2, h, w, dtype=torch.bool)
    masks[0, 8:40, 10:50] = True
    masks[1, 28:60, 56:90] = True
    img = torch.full((1, 3, h, w), -1.0)
    img[0, 0][masks[0]] = 1.5
    img[0, 1][masks[1]] = 1.5
    target = {"boxes": torch.tensor([[10.0, 8, 50, 40], [56, 28, 90, 60]]),
              "labels": torch.tensor([0, 1]), "masks": masks}
    return img, target


def test_config_mirrors_constructor():
    params = inspect.signature(CondInst.__init__).parameters
    for f in dataclasses.fields(CondInstConfig):
        assert f.name in params, f.name
        if f.name != "num_classes":
            assert params[f.name].default == f.default, f.name
    m = CondInst.from_config(CondInstConfig(num_classes=3, **TINY))
    assert m.num_classes == 3 and m.head.cls_logits.out_channels == 3


def test_head_outputs_per_level():
    torch.manual_seed(0)
    m = CondInst(5, **TINY)
    out = m.forward_heads(torch.randn(2, 3, 64, 96))
    sizes = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]  # P3-P7 of 64x96 (ceil)
    n = sum(h * w for h, w in sizes)
    assert out.cls_logits.shape == (2, n, 5) and out.box_ltrb.shape == (2, n, 4)
    assert out.ctr_logits.shape == (2, n) and out.controller.shape == (2, n, 169)
    assert out.features.shape == (2, n, 32) and out.locations.shape == (n, 2)
    assert (out.box_ltrb >= 0).all()
    assert [s.stop - s.start for s in out.level_slices] == [h * w for h, w in sizes]
    assert out.strides[out.level_slices[4]].tolist() == [128.0]
    assert out.locations[out.level_slices[1]][:2].tolist() == [[8, 8], [24, 8]]
    assert out.mask_feats.shape == (2, 8, 8, 12) and out.mask_stride == 8
    # class logits start at the focal prior 0.01
    assert torch.allclose(torch.sigmoid(out.cls_logits).mean(), torch.tensor(0.01), atol=2e-3)


def test_mask_features_from_p2():
    m = CondInst(2, mask_in_features=("p2", "p3", "p4", "p5"), **TINY)
    out = m.forward_heads(torch.randn(1, 3, 64, 96))
    assert out.mask_stride == 4 and out.mask_feats.shape == (1, 8, 16, 24)
    assert m.mask_logits(out, torch.tensor([0]), torch.tensor([5])).shape == (1, 1, 16, 24)
    img, t = _scene()
    m.train()
    losses = m(img, [t])
    assert all(torch.isfinite(v) for v in losses.values())


def test_gt_masks_area_fraction_at_stride_4():
    m = CondInst(2, **TINY)
    mask = torch.zeros(1, 6, 9, dtype=torch.bool)  # padded up to 8x12 before pooling
    mask[0, 0:4, 0:4] = True
    mask[0, 4:6, 8:9] = True
    small = m.gt_masks_at_output_stride(mask, (2, 3))
    assert small[0].tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 2 / 16]]


def test_training_losses_and_gradients():
    torch.manual_seed(0)
    m = CondInst(3, **TINY).train()
    img, t = _scene()
    losses = m(img.repeat(2, 1, 1, 1), [t, {"boxes": torch.zeros(0, 4),
                                            "labels": torch.zeros(0, dtype=torch.long),
                                            "masks": torch.zeros(0, 64, 96, dtype=torch.bool)}])
    assert set(losses) == {"loss_cls", "loss_box", "loss_ctr", "loss_mask"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert m.head.controller.weight.grad.abs().sum() > 0
    assert m.mask_branch.tower[-1].weight.grad.abs().sum() > 0
    assert m.backbone.stages[0][0][0].weight.grad.abs().sum() > 0


def test_mask_bce_weight_adds_bce_to_the_mask_loss(monkeypatch):
    import tubelet.models.condinst.model as cm
    img, t = _scene()
    seen = []
    real = cm.mask_loss
    monkeypatch.setattr(cm, "mask_loss", lambda *a: seen.append(a) or real(*a))
    torch.manual_seed(0)
    loss = CondInst(3, mask_bce_weight=2.0, **TINY).train()(img, [t])["loss_mask"]
    (logits, target, w), = seen
    assert w == 2.0 and logits.shape == target.shape and logits.shape[0] > 0
    # dice + 2 x BCE, the BCE written out per pixel
    p = torch.sigmoid(logits.detach().double())
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    dice = 1 - 2 * (p * target).flatten(1).sum(1) / (
        (p * p).flatten(1).sum(1) + (target * target).flatten(1).sum(1) + 1e-5)
    assert abs(float(loss.detach()) - float(dice.mean() + 2 * bce)) < 1e-5


def test_no_objects_gives_zero_mask_loss():
    m = CondInst(3, **TINY).train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
             "masks": torch.zeros(0, 64, 96, dtype=torch.bool)}
    losses = m(torch.randn(1, 3, 64, 96), [empty])
    assert losses["loss_mask"].item() == 0 and losses["loss_box"].item() == 0
    assert losses["loss_cls"].item() > 0  # every location is a background term
    sum(losses.values()).backward()


def test_max_proposals_limits_mask_instances(monkeypatch):
    m = CondInst(3, max_proposals=3, **TINY).train()
    seen = []
    real = m.dynamic.forward
    monkeypatch.setattr(m.dynamic, "forward",
                        lambda *a: seen.append(a[2].shape[0]) or real(*a))
    img, t = _scene()
    m(img, [t])
    assert seen == [3]


def test_predict_output_format():
    torch.manual_seed(0)
    m = CondInst(4, score_thr=0.0, max_detections=7, **TINY)
    m.train()
    dets = m.predict(torch.randn(2, 3, 64, 96), image_sizes=[(60, 90), (64, 96)],
                     output_sizes=[(120, 180), (64, 96)])
    assert m.training  # restored
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)
    d = dets[0]
    assert len(d) == 7
    assert d.boxes.shape == (7, 4) and d.scores.shape == (7,) and d.labels.dtype == torch.long
    assert d.class_probs.shape == (7, 4) and d.features.shape == (7, 32)
    assert d.masks.shape == (7, 120, 180) and d.masks.dtype == torch.bool
    assert (d.boxes[:, [0, 2]] <= 180).all() and (d.boxes[:, [1, 3]] <= 120).all()
    assert (d.scores[:-1] >= d.scores[1:]).all()
    assert ((d.labels >= 0) & (d.labels < 4)).all()
    # the score is class probability x centerness at the detection's location
    assert torch.allclose(d.scores, d.class_probs.gather(1, d.labels[:, None])[:, 0] * d.centerness)
    assert dets[1].masks.shape[1:] == (64, 96)
    fi = d.to_frame_instances(category_ids=[10, 20, 30, 40])
    assert fi.masks.shape == (7, 120, 180) and set(fi.labels) <= {10, 20, 30, 40}
    probs = m.predict(torch.randn(1, 3, 64, 96), mask_probs=True)[0].masks
    assert probs.dtype == torch.float32 and probs.min() >= 0 and probs.max() <= 1


def test_untrained_model_predicts_nothing_at_default_threshold():
    # prior 0.01 < score threshold 0.05: empty but well-formed detections
    d = CondInst(4, **TINY).eval()(torch.randn(1, 3, 64, 96))[0]
    assert len(d) == 0 and d.masks.shape == (0, 64, 96) and d.class_probs.shape == (0, 4)


def _iou(a, b):
    return float((a & b).sum()) / float((a | b).sum())


def test_overfit_one_image():
    """~100 Adam steps on one image with two rectangles: the losses fall and predict() finds both
    boxes and masks (IoU > 0.5). About 7 s on one thread."""
    torch.manual_seed(0)
    img, t = _scene()
    m = CondInst(2, **TINY).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    first = None
    for _ in range(100):
        losses = m(img, [t])
        total = sum(losses.values())
        first = first or {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        total.backward()
        opt.step()
    last = {k: v.item() for k, v in losses.items()}
    assert last["loss_cls"] < 0.1 * first["loss_cls"]
    assert last["loss_box"] < 0.3 * first["loss_box"]
    assert last["loss_mask"] < 0.1 * first["loss_mask"]
    d = m.eval().predict(img)[0]
    from torchvision.ops import box_iou
    for j in range(2):
        sel = torch.nonzero(d.labels == j).flatten()
        assert sel.numel() > 0, f"class {j} not detected"
        k = int(sel[0])  # the best-scoring detection of that class
        assert float(box_iou(d.boxes[k:k + 1], t["boxes"][j:j + 1])) > 0.5
        assert _iou(d.masks[k], t["masks"][j]) > 0.5
        assert d.scores[k] > 0.2


def test_lazy_controller_equals_dense_conv():
    """Inference evaluates the controller only at detected locations; the reference is the dense
    3x3 conv over every location of every level, batch of 2, including border locations."""
    torch.manual_seed(0)
    model = CondInst(num_classes=3, **TINY).eval()
    for p in model.head.controller.parameters():
        torch.nn.init.normal_(p, std=0.1)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        dense = model.forward_heads(images)
        lazy = model.forward_heads(images, lazy_controller=True)
        assert lazy.controller is None and dense.controller is not None
        L = dense.locations.shape[0]
        loc = torch.cat([torch.arange(0, L, 7), torch.tensor([0, L - 1])])  # all levels, corners
        for b in (0, 1):
            img = torch.full_like(loc, b)
            got = model.controller_params(lazy, img, loc)
            torch.testing.assert_close(got, dense.controller[b, loc], atol=1e-5, rtol=1e-4)
        # and the masks predicted through either path agree
        img = torch.zeros(5, dtype=torch.long)
        torch.testing.assert_close(model.mask_logits(lazy, img, loc[:5]),
                                   model.mask_logits(dense, img, loc[:5]), atol=1e-4, rtol=1e-4)
