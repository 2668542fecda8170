"""Backbone and FPN output shapes, frozen BatchNorm and frozen stages."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from tubelet.errors import InputError
from tubelet.models.backbones import Backbone, freeze_batchnorm
from tubelet.models.fpn import FPN

CHANNELS = {"mobilenet_v2": {"c2": 24, "c3": 32, "c4": 96, "c5": 320},
            "resnet18": {"c2": 64, "c3": 128, "c4": 256, "c5": 512},
            "resnet50": {"c2": 256, "c3": 512, "c4": 1024, "c5": 2048}}


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "resnet50"])
def test_backbone_levels(name):
    torch.manual_seed(0)
    bb = Backbone(name, return_c2=True).eval()
    h, w = 70, 100  # not multiples of 32: sizes are ceil(H / stride)
    with torch.no_grad():
        out = bb(torch.randn(1, 3, h, w))
    assert list(out) == ["c2", "c3", "c4", "c5"]
    for k, s in {"c2": 4, "c3": 8, "c4": 16, "c5": 32}.items():
        assert out[k].shape == (1, CHANNELS[name][k], math.ceil(h / s), math.ceil(w / s))
        assert bb.out_channels[k] == CHANNELS[name][k] and bb.strides[k] == s


def test_backbone_without_c2():
    bb = Backbone("mobilenet_v2")
    assert bb.out_features == ["c3", "c4", "c5"]
    out = bb(torch.randn(2, 3, 64, 96))
    assert list(out) == ["c3", "c4", "c5"] and out["c5"].shape == (2, 320, 2, 3)


def test_unknown_backbone_is_input_error():
    with pytest.raises(InputError, match="unknown backbone"):
        Backbone("vgg16")


def test_freeze_batchnorm_keeps_statistics():
    bn = nn.BatchNorm2d(3)
    bn.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    bn.weight.data.copy_(torch.tensor([1.0, 2.0, 3.0]))
    bn.bias.data.copy_(torch.tensor([0.5, 0.0, -1.0]))
    frozen = freeze_batchnorm(nn.Sequential(bn))[0]
    assert isinstance(frozen, FrozenBatchNorm2d)
    x = torch.ones(1, 3, 1, 1)
    # hand: (1 - mean) / sqrt(var + eps) * weight + bias
    expect = torch.tensor([0.5, (1 - 2) / 1 * 2, (1 - 3) / 0.5 * 3 - 1])
    assert torch.allclose(frozen.train()(x).flatten(), expect, atol=1e-3)


def test_frozen_bn_and_frozen_stages_stay_frozen():
    torch.manual_seed(0)
    bb = Backbone("mobilenet_v2", norm="frozen_bn", freeze_at=2).train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())
    assert all(not p.requires_grad for p in bb.stages[:2].parameters())
    assert all(p.requires_grad for p in bb.stages[2:].parameters())
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    opt = torch.optim.SGD([p for p in bb.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        loss = sum(v.square().mean() for v in bb(torch.randn(2, 3, 64, 64)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = bb.state_dict()
    for k, v in before.items():
        if k.startswith(("stages.0.", "stages.1.")) or "running_" in k:
            assert torch.equal(v, after[k]), k  # frozen stages and every BN statistic
    assert not torch.equal(before["stages.2.4.conv.0.0.weight"], after["stages.2.4.conv.0.0.weight"])


def test_trainable_bn_outside_frozen_stages():
    bb = Backbone("resnet18", norm="bn", freeze_at=1).train()
    assert isinstance(bb.stages[0][1], FrozenBatchNorm2d)  # stem BN frozen with the stem
    assert isinstance(bb.stages[1][0].bn1, nn.BatchNorm2d)
    mean = bb.stages[1][0].bn1.running_mean.clone()
    bb(torch.randn(2, 3, 32, 32))
    assert not torch.equal(mean, bb.stages[1][0].bn1.running_mean)


@pytest.mark.parametrize("with_p2", [False, True])
def test_fpn_levels(with_p2):
    chans = {"c3": 32, "c4": 96, "c5": 320}
    if with_p2:
        chans["c2"] = 24
    fpn = FPN(chans, channels=32, top_levels=2)
    h, w = 70, 100
    feats = {k: torch.randn(1, c, math.ceil(h / 2 ** int(k[1:])), math.ceil(w / 2 ** int(k[1:])))
             for k, c in chans.items()}
    out = fpn(feats)
    names = (["p2"] if with_p2 else []) + ["p3", "p4", "p5", "p6", "p7"]
    assert list(out) == names
    for k in names:
        s = 2 ** int(k[1:])
        assert out[k].shape == (1, 32, math.ceil(h / s), math.ceil(w / s)), k
        assert fpn.strides[k] == s
