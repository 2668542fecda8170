"""Deformable DETR network: positions, reference points, box refinement, mask glue, presets."""
from __future__ import annotations

import math

import torch

from tubelet.models.condinst.dynamic_mask import DynamicMaskHead
from tubelet.models.deformable_detr.box_ops import inverse_sigmoid
from tubelet.models.deformable_detr.mask_head import QueryMaskHead
from tubelet.models.deformable_detr.model import DeformableDETR, DeformableDETRConfig
from tubelet.models.deformable_detr.transformer import (DeformableTransformer,
                                                        encoder_reference_points,
                                                        sine_position_encoding)


def test_sine_position_encoding_by_hand():
    pos = sine_position_encoding(2, 3, 8)  # [8, 2, 3]: channels 0-3 encode y, 4-7 encode x
    assert pos.shape == (8, 2, 3)
    # y of row 1: (1 + 0.5) / 2 * 2 pi = 1.5 pi; dim_t = 10000^(2 floor(i/2) / 4) = 1, 1, 100, 100
    y = 1.5 * math.pi
    expect_y = [math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100)]
    assert torch.allclose(pos[:4, 1, 2], torch.tensor(expect_y), atol=1e-5)
    x = 0.5 / 3 * 2 * math.pi  # column 0
    expect_x = [math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)]
    assert torch.allclose(pos[4:, 1, 0], torch.tensor(expect_x), atol=1e-5)


def test_encoder_reference_points_by_hand():
    ref = encoder_reference_points([(2, 2), (1, 2)], batch=1, n_levels=2)
    assert ref.shape == (1, 6, 2, 2)
    expect = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75],
                           [0.25, 0.5], [0.75, 0.5]])
    assert torch.equal(ref[0, :, 0], expect) and torch.equal(ref[0, :, 1], expect)


def test_inverse_sigmoid():
    x = torch.tensor([0.2, 0.5, 0.9])
    assert torch.allclose(inverse_sigmoid(x).sigmoid(), x, atol=1e-6)
    assert torch.isfinite(inverse_sigmoid(torch.tensor([0.0, 1.0]))).all()


def _transformer():
    torch.manual_seed(0)
    t = DeformableTransformer(d_model=16, n_heads=2, num_encoder_layers=1, num_decoder_layers=3,
                              dim_feedforward=32, dropout=0.0, n_levels=2, n_points=2,
                              num_queries=5)
    srcs = [torch.randn(2, 16, 4, 6), torch.randn(2, 16, 2, 3)]
    return t, srcs


def test_first_layer_boxes_at_init():
    t, srcs = _transformer()
    _, _, hs, boxes = t(srcs)
    assert hs.shape == (3, 2, 5, 16) and boxes.shape == (3, 2, 5, 4)
    # zero-initialised box heads: layer 0 = (reference point, sigmoid(-2)); later layers keep it
    query_pos = t.query_embed.weight[:, :16]
    ref = t.reference_points(query_pos).sigmoid()
    assert torch.allclose(boxes[0, 0, :, :2], ref, atol=1e-6)
    assert torch.allclose(boxes[0, :, :, 2:], torch.full((2, 5, 2), 1 / (1 + math.e ** 2)))
    assert torch.allclose(boxes[2], boxes[0], atol=1e-5)


def test_box_refinement_and_detach():
    t, srcs = _transformer()
    with torch.no_grad():  # non-zero box deltas
        for head in t.bbox_embed:
            head.layers[-1].weight.normal_(0, 0.1)
    memory, shapes, hs, boxes = t(srcs)
    # layer d refines layer d-1's box in inverse-sigmoid space
    for d in (1, 2):
        expect = (t.bbox_embed[d](hs[d]) + inverse_sigmoid(boxes[d - 1])).sigmoid()
        assert torch.allclose(boxes[d], expect, atol=1e-5)
    # the reference is detached: the last layer's boxes give no gradient to earlier box heads
    boxes[2].sum().backward()
    for d in (0, 1):
        assert all(p.grad is None or not p.grad.any() for p in t.bbox_embed[d].parameters())
    assert t.bbox_embed[2].layers[-1].weight.grad.abs().sum() > 0


def test_mask_head_glue_matches_dynamic_head():
    torch.manual_seed(0)
    head = QueryMaskHead(d_model=16, c2_channels=6, memory_levels=2, branch_channels=8,
                         branch_convs=1)
    assert head.num_params == 169  # (8 + 2) * 8 + 8 + 8 * 8 + 8 + 8 + 1
    feats = torch.randn(2, 8, 6, 10)  # stride 4 of a 24 x 40 image
    params = torch.randn(3, 169) * 0.3
    img = torch.tensor([0, 1, 1])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.25, 0.75, 0.1, 0.4], [0.9, 0.1, 0.3, 0.3]])
    out = head(feats, params, img, boxes, (24, 40))
    assert out.shape == (3, 6, 10)
    # relative coordinates from the box centre in pixels, normalised by max(H, W) = 40
    centres = torch.tensor([[20.0, 12.0], [10.0, 18.0], [36.0, 2.4]])
    ref = DynamicMaskHead(8, 8, 3)(feats, 4, params, img, centres, torch.full((3,), 40.0))
    assert torch.allclose(out, ref[:, 0], atol=1e-5)
    # box size does not enter the mask
    other = boxes.clone()
    other[:, 2:] = 0.6
    assert torch.allclose(head(feats, params, img, other, (24, 40)), out)
    c2 = torch.randn(2, 6, 6, 10)
    maps = [torch.randn(2, 16, 3, 5), torch.randn(2, 16, 2, 3)]
    assert head.mask_features(c2, maps).shape == (2, 8, 6, 10)


def _check_outputs(model, cfg, images):
    out = model(images)
    b, q, c = images.shape[0], cfg.num_queries, cfg.num_classes
    h, w = images.shape[-2:]
    assert out["pred_logits"].shape == (b, q, c)
    assert out["pred_boxes"].shape == (b, q, 4)
    assert ((out["pred_boxes"] > 0) & (out["pred_boxes"] < 1)).all()
    assert out["query_embeds"].shape == (b, q, cfg.d_model)
    assert out["mask_params"].shape == (b, q, 169)
    assert out["contrast_embeds"].shape == (b, q, cfg.embed_dim)
    assert len(out["aux_outputs"]) == cfg.dec_layers - 1
    for layer in out["aux_outputs"]:
        assert layer["pred_logits"].shape == (b, q, c) and layer["pred_boxes"].shape == (b, q, 4)
    assert out["mask_feats"].shape == (b, 8, math.ceil(h / 4), math.ceil(w / 4))
    masks = model.mask_logits(out, out["aux_outputs"][0], torch.tensor([0, b - 1]),
                              torch.tensor([0, q - 1]))
    assert masks.shape == (2, math.ceil(h / 4), math.ceil(w / 4))
    # focal-loss prior: every class starts at probability 0.01
    assert torch.allclose(model.class_embed[0].bias.sigmoid(), torch.full((c,), 0.01))


def test_cpu_preset_forward():
    cfg = DeformableDETRConfig.cpu(num_classes=5)
    assert (cfg.backbone, cfg.pretrained, cfg.num_levels) == ("mobilenet_v2", "imagenet", 3)
    model = DeformableDETR.from_config(cfg).eval()
    with torch.no_grad():
        _check_outputs(model, cfg, torch.randn(1, 3, 64, 96))


def test_paper_preset_forward():
    cfg = DeformableDETRConfig.paper(num_classes=40, pretrained=None)
    assert (cfg.backbone, cfg.enc_layers, cfg.dec_layers, cfg.num_queries, cfg.d_model,
            cfg.dim_feedforward, cfg.n_heads, cfg.num_levels, cfg.n_points) == \
        ("resnet50", 6, 6, 300, 256, 1024, 8, 4, 4)
    model = DeformableDETR.from_config(cfg).eval()
    assert len(model.input_proj) == 4  # C3, C4, C5 + one stride-64 level
    assert model.contrast_head.layers[0].weight.shape == (256, 256)
    assert len(model.contrast_head.layers) == 3
    with torch.no_grad():
        _check_outputs(model, cfg, torch.randn(1, 3, 64, 64))


def test_every_parameter_trains_through_losses():
    cfg = DeformableDETRConfig.cpu(num_classes=2, pretrained=None, enc_layers=1, dec_layers=2,
                                   num_queries=4)
    model = DeformableDETR.from_config(cfg).eval()  # eval: BatchNorm statistics on a 1x1 C5
    out = model(torch.randn(1, 3, 32, 32))
    loss = out["pred_logits"].sum() + out["pred_boxes"].sum() + out["contrast_embeds"].sum() \
        + out["aux_outputs"][0]["pred_logits"].sum() + out["aux_outputs"][0]["pred_boxes"].sum()
    loss = loss + model.mask_logits(out, out, torch.tensor([0]), torch.tensor([1])).sum() \
        + model.mask_logits(out, out["aux_outputs"][0], torch.tensor([0]), torch.tensor([1])).sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
