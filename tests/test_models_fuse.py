"""BatchNorm folding: the fused module computes what the unfused one does (the reference)."""
import copy

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from tubelet.models.backbones import Backbone
from tubelet.models.fuse import fuse_conv_bn, fused_conv


def _randomise_bn(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            c = m.running_mean.shape[0]
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)


def test_single_pair_by_hand():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    conv.weight.data.fill_(2.0)
    bn = nn.BatchNorm2d(1, eps=0.0).eval()
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0)
    bn.weight.data.fill_(3.0)
    bn.bias.data.fill_(0.5)
    f = fused_conv(conv, bn)
    # y = 3 * (2x - 1) / 2 + 0.5 = 3x - 1
    x = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    assert torch.allclose(f(x), torch.tensor([[[[-1.0, 2.0, 5.0]]]]))


def test_training_batchnorm_is_refused():
    with pytest.raises(ValueError, match="training mode"):
        fused_conv(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1).train())


@pytest.mark.parametrize("name,norm,expected", [("mobilenet_v2", "frozen_bn", 51),
                                                 ("resnet18", "bn", 20)])
def test_backbone_outputs_unchanged(name, norm, expected):
    torch.manual_seed(0)
    net = Backbone(name, pretrained=None, norm=norm).eval()
    _randomise_bn(net)
    ref = copy.deepcopy(net)
    n = fuse_conv_bn(net)
    # every BatchNorm of the trunk: MobileNetV2 stem 1 + first block 2 + 16 blocks x 3 (the final
    # 1280-channel conv is dropped); ResNet-18 stem 1 + 8 blocks x 2 + 3 downsample
    assert n == expected
    assert not any(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in net.modules())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = ref(x), net(x)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-4), k


def test_method_fused_predictions_match_and_training_refused():
    from tubelet.methods import build_method
    from tubelet.engine.config import load_experiment
    cfg = load_experiment("configs/condinst_track_tiny.yaml", [])
    torch.manual_seed(0)
    m = build_method(cfg.method, cfg.model).eval()
    _randomise_bn(m)
    # a low threshold so the untrained model emits detections to compare
    m.segmenter.score_thr = 0.0
    ref = copy.deepcopy(m)
    assert m.fuse_for_inference() > 0
    frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    a, b = ref.detect_frame(frame), m.detect_frame(frame)
    assert len(a.scores) == len(b.scores) > 0
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-3, atol=1e-5)
    assert (a.masks != b.masks).mean() < 1e-3  # threshold flips from rounding only
    with pytest.raises(RuntimeError, match="fused"):
        m.train()


def test_yolov4_frozen_dense_matches_eager_and_is_used():
    # yolov4-seg's fuse step runs backbone + neck + heads as a frozen TorchScript graph per shape:
    # the same detections as the plain model (up to oneDNN rounding)
    from tubelet.methods import build_method
    from tubelet.engine.config import load_experiment
    cfg = load_experiment("configs/yolov4_seg_tiny.yaml", ["model.model.conf_thr=0.0"])
    torch.manual_seed(0)
    m = build_method(cfg.method, cfg.model).eval()
    _randomise_bn(m)
    ref = copy.deepcopy(m)
    m.fuse_for_inference()
    frozen = m.detector.frozen_dense
    assert frozen is not None and not frozen.graphs
    frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    a, b = ref.detect_frame(frame), m.detect_frame(frame)
    assert len(frozen.graphs) == 1  # traced once for this input shape
    assert len(a.scores) == len(b.scores) > 0
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(a.boxes, b.boxes, rtol=1e-3, atol=1e-2)
    assert (a.masks != b.masks).mean() < 1e-3
    m.detect_frame(frame)
    assert len(frozen.graphs) == 1  # the same shape reuses its graph


@pytest.mark.parametrize("overrides", [[], ["model.model.assoc_level=c4"],
                                       ["model.model.use_association=false"]])
def test_iai_frozen_graphs_match_eager_over_a_video(overrides):
    # iai-condinst's fuse step runs the frame before and after the association block as two frozen
    # graphs (the block, reading a memory that changes every frame, stays eager): the same
    # outputs, frame after frame with the memory written in between, as the plain model
    from tubelet.methods import build_method
    from tubelet.engine.config import load_experiment
    # gates low and overlapping masks kept, so the untrained model emits ~7 detections a frame
    cfg = load_experiment("configs/iai_condinst_tiny.yaml",
                          ["model.model.cls_thr=0.0", "model.model.id_thr=0.0",
                           "model.model.condinst.mask_thr=0.2", "model.model.max_mask_lost=1.0"]
                          + overrides)
    torch.manual_seed(0)
    m = build_method(cfg.method, cfg.model).eval()
    _randomise_bn(m)
    ref = copy.deepcopy(m)
    m.fuse_for_inference()
    before, after = m.iai.frozen
    assert not before.graphs and not after.graphs
    frames = np.random.default_rng(1).integers(0, 255, (5, 64, 96, 3), dtype=np.uint8)
    a, b = list(ref.predict_video(frames)), list(m.predict_video(frames))
    assert len(before.graphs) == len(after.graphs) == 1  # one shape: traced once each
    assert all(len(f.scores) >= 2 for f in a)
    assert any(len(set(f.track_ids) & set(a[0].track_ids)) for f in a[1:])  # identities carried
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fa.scores, fb.scores, rtol=1e-3, atol=1e-5)
        np.testing.assert_array_equal(fa.track_ids, fb.track_ids)
        assert fa.masks == fb.masks
