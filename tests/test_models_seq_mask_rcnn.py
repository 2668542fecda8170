"""Per-frame Mask R-CNN of Seq Mask R-CNN: train / eval forwards on tiny random frames, the
notes' test-time defaults, both presets' shapes, box classification, mask boxes by hand."""
import pytest
import torch

from tubelet.models.seq_mask_rcnn import (FrameMaskRCNN, MaskRCNNConfig, SeqPropConfig,
                                          SeqPropHead, mask_boxes)

H, W = 72, 100  # padded to 96 x 128 inside the model




@pytest.fixture(scope="module")
def cpu_model():
    torch.manual_seed(0)
    return FrameMaskRCNN.from_config(MaskRCNNConfig.cpu())  # offline ImageNet MobileNetV2


def _targets():
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, 10:40, 20:60] = True
    masks[1, 30:70, 50:90] = True
    return [{"boxes": torch.tensor([[20.0, 10, 60, 40], [50, 30, 90, 70]]),
             "labels": torch.tensor([0, 9]), "masks": masks},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
             "masks": torch.zeros(0, H, W, dtype=torch.bool)}]  # a frame without objects


def test_notes_test_time_defaults_reach_the_modules():
    cfg = MaskRCNNConfig.paper()
    assert (cfg.rpn_pre_nms_test, cfg.rpn_post_nms_test, cfg.rpn_nms_thr) == (200, 200, 0.7)
    assert (cfg.score_thr, cfg.nms_thr, cfg.max_detections, cfg.mask_thr) == \
        (0.2, 0.5, 10, 0.5)
    assert (cfg.box_roi_size, cfg.mask_roi_size, cfg.fpn_channels) == (7, 14, 256)
    m = FrameMaskRCNN.from_config(MaskRCNNConfig.cpu(pretrained=None))
    assert m.rpn._pre_nms_top_n["testing"] == 200 and m.rpn._post_nms_top_n["testing"] == 200
    assert m.rpn.nms_thresh == 0.7
    rh = m.roi_heads
    assert (rh.score_thresh, rh.nms_thresh, rh.detections_per_img) == (0.2, 0.5, 10)
    assert rh.box_roi_pool.output_size == (7, 7) and rh.mask_roi_pool.output_size == (14, 14)
    assert m.mask_thr == 0.5


def test_train_forward_gives_finite_losses_and_features(cpu_model):
    torch.manual_seed(1)
    images = torch.randn(2, 3, H, W)
    cpu_model.train()
    out = cpu_model(images, _targets())
    assert set(out.losses) == {"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box",
                               "loss_mask"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in out.losses.values())
    assert out.detections is None
    sum(out.losses.values()).backward()
    assert cpu_model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad.abs().sum() > 0
    assert cpu_model.fpn.output["c2"].weight.grad.abs().sum() > 0
    f = out.features
    assert f.padded_size == (96, 128) and f.image_sizes == [(H, W)] * 2
    assert f.c2.shape == (2, 24, 24, 32) and f.c3.shape == (2, 32, 12, 16)
    assert [tuple(v.shape) for v in f.pyramid.values()] == \
        [(2, 64, 24, 32), (2, 64, 12, 16), (2, 64, 6, 8), (2, 64, 3, 4), (2, 64, 2, 2)]
    assert f.p2 is f.pyramid["p2"]
    with pytest.raises(ValueError):
        cpu_model(images)  # training without targets


def test_eval_forward_gives_detections_and_features(cpu_model):
    torch.manual_seed(2)
    images = torch.randn(2, 3, H, W)
    cpu_model.eval()
    with torch.no_grad():
        out = cpu_model(images)
    assert out.losses == {} and len(out.detections) == 2 and out.features.c2.shape[0] == 2
    for det in out.detections:  # defaults: at most 10 with score > 0.2
        assert len(det) <= 10 and (det.scores > 0.2).all()
        assert det.masks.shape == (len(det), H, W) and det.masks.dtype == torch.bool
    # with every score admitted there are exactly O = 10 detections per frame
    loose = FrameMaskRCNN.from_config(MaskRCNNConfig.cpu(pretrained=None, score_thr=0.0))
    loose.eval()
    with torch.no_grad():
        dets = loose(images, mask_probs=True).detections
    for det in dets:
        assert len(det) == 10
        assert det.boxes.shape == (10, 4) and det.labels.shape == (10,)
        assert ((det.labels >= 0) & (det.labels < 10)).all()
        assert (det.scores[:-1] >= det.scores[1:]).all()  # sorted
        assert (det.boxes[:, 2] <= W).all() and (det.boxes[:, 3] <= H).all()
        assert det.masks.dtype == torch.float32 and det.masks.shape == (10, H, W)
        assert ((det.masks >= 0) & (det.masks <= 1)).all()
        top = det[:3]
        assert len(top) == 3 and top.masks.shape == (3, H, W)


def test_losses_work_in_eval_mode_and_detect_in_train_mode(cpu_model):
    # the RPN / RoI heads are switched per call, whatever mode the model is in
    images = torch.randn(2, 3, H, W)
    cpu_model.eval()
    feats = cpu_model.extract(images)
    losses = cpu_model.losses(feats, _targets())
    assert torch.isfinite(torch.stack(list(losses.values()))).all()
    cpu_model.train()
    with torch.no_grad():
        dets = cpu_model.detect(cpu_model.extract(images))
    assert len(dets) == 2 and cpu_model.rpn.training and cpu_model.roi_heads.training
    cpu_model.eval()


def test_classify_boxes_is_a_distribution_per_box_and_frame_independent(cpu_model):
    torch.manual_seed(3)
    cpu_model.eval()
    with torch.no_grad():
        feats = cpu_model.extract(torch.randn(2, 3, H, W))
        boxes = [torch.tensor([[0.0, 0, 30, 30], [20, 10, 90, 70]]), torch.zeros(0, 4)]
        probs = cpu_model.classify_boxes(feats, boxes)
        assert probs[0].shape == (2, 11) and probs[1].shape == (0, 11)
        torch.testing.assert_close(probs[0].sum(1), torch.ones(2))
        # the same boxes on frame 0 alone give the same distribution
        alone = cpu_model.classify_boxes(feats.frames(0), boxes[:1])[0]
        torch.testing.assert_close(alone, probs[0], rtol=1e-5, atol=1e-6)


def test_mask_probs_for_boxes_stay_inside_the_box(cpu_model):
    torch.manual_seed(4)
    cpu_model.eval()
    with torch.no_grad():
        feats = cpu_model.extract(torch.randn(2, 3, H, W))
        got = cpu_model.mask_probs_for_boxes(
            feats, [torch.tensor([[20.0, 10, 60, 40]]), torch.tensor([[0.0, 0, 10, 10]])],
            [torch.tensor([3]), torch.tensor([0])])
    assert got[0].shape == (1, H, W) and got[1].shape == (1, H, W)
    m = got[0][0]
    assert ((m >= 0) & (m <= 1)).all() and m[10:40, 20:60].min() > 0
    # pasting enlarges the 28x28 grid by 1 cell each side (~1.5 px here): nothing beyond 3 px
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[7:43, 17:63] = False
    assert m[outside].abs().max() == 0


def test_paper_config_shapes_and_seq_prop_fit():
    torch.manual_seed(5)
    m = FrameMaskRCNN.from_config(MaskRCNNConfig.paper(pretrained=None))
    m.eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 64, 64))
    f = out.features
    assert f.p2.shape == (1, 256, 16, 16) and f.c2.shape == (1, 256, 16, 16)
    assert f.c3.shape == (1, 512, 8, 8) and f.pyramid["pool"].shape == (1, 256, 1, 1)
    assert len(out.detections) == 1 and len(out.detections[0]) <= 10
    assert m.roi_heads.box_predictor.cls_score.out_features == 41  # 40 classes + background
    # the paper Seq-Prop head reads these features as they come
    head = SeqPropHead.from_config(SeqPropConfig.paper())
    with torch.no_grad():
        keys, values = head.encode_memory(f.p2, torch.ones(2, 64, 64))
        probs = head(keys[:, :, None], values[:, :, None], f.p2, f.c3, f.c2)
    assert keys.shape == (2, 64, 4, 4) and values.shape == (2, 256, 4, 4)
    assert probs.shape == (2, 64, 64)


def test_cpu_presets_fit_together(cpu_model):
    cpu_model.eval()
    head = SeqPropHead.from_config(SeqPropConfig.cpu())
    with torch.no_grad():
        f = cpu_model.extract(torch.randn(2, 3, H, W))
        one = f.frames(1)
        keys, values = head.encode_memory(f.frames(0).p2, torch.ones(3, H, W))
        probs = head(keys[:, :, None], values[:, :, None], one.p2, one.c3, one.c2,
                     out_size=one.image_sizes[0])
    assert probs.shape == (3, H, W)
    assert len(f.frames([1, 0])) == 2 and f.frames(slice(0, 1)).c3.shape[0] == 1


def test_mask_boxes_by_hand():
    masks = torch.zeros(4, 6, 8, dtype=torch.bool)
    masks[0, 2:4, 1:5] = True   # rows 2-3, cols 1-4: edges (1, 2, 5, 4) -> +1 px (0, 1, 6, 5)
    masks[1, 0, 0] = True       # corner: (-1, -1, 2, 2) clipped -> (0, 0, 2, 2)
    masks[2, 5, 7] = True       # far corner: (6, 4, 9, 7) clipped -> (6, 4, 8, 6)
    got = mask_boxes(masks)     # masks[3] empty -> whole frame
    expected = torch.tensor([[0, 1, 6, 5], [0, 0, 2, 2], [6, 4, 8, 6], [0, 0, 8, 6]],
                            dtype=torch.float32)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(mask_boxes(masks[:1], pad=0), torch.tensor([[1.0, 2, 5, 4]]))
    assert mask_boxes(torch.zeros(0, 6, 8, dtype=torch.bool)).shape == (0, 4)
