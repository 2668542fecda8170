"""IAICondInst end to end: presets, per-frame shapes, teacher-forced training, the streaming
detect / write-memory step, and the per-frame post-processing by hand."""
from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch

from tubelet.models.condinst import CondInstConfig
from tubelet.models.iai import (IAICondInst, IAICondInstConfig, paint_masks,
                                select_iai_candidates)




def _tiny(**overrides) -> IAICondInst:
    cfg = IAICondInstConfig.cpu(num_classes=3)
    cfg.condinst = CondInstConfig(num_classes=3, fpn_channels=32, num_convs=1,
                                  mask_branch_channels=16, mask_branch_convs=1,
                                  size_boundaries=(32, 64, 128, 256), max_proposals=16)
    cfg.assoc_dim, cfg.ffn_dim = 32, 64
    return IAICondInst.from_config(cfg, **overrides)


def _num_locations(h, w, strides=(8, 16, 32, 64, 128)):
    return sum(math.ceil(h / s) * math.ceil(w / s) for s in strides)


def test_config_mirrors_constructor():
    params = inspect.signature(IAICondInst.__init__).parameters
    for f in dataclasses.fields(IAICondInstConfig):
        if f.name == "condinst":
            continue
        assert f.name in params, f.name
        assert params[f.name].default == f.default, f.name


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_presets_forward_shapes(preset):
    torch.manual_seed(0)
    if preset == "paper":
        cfg = IAICondInstConfig.paper(num_classes=40, pretrained=None)
        assert cfg.condinst.backbone == "resnet50" and cfg.condinst.fpn_channels == 256
        c5, dim, classes = 2048, 256, 40
    else:
        cfg = IAICondInstConfig.cpu(num_classes=10)
        assert cfg.condinst.backbone == "mobilenet_v2"
        c5, dim, classes = 320, 128, 10
    assert cfg.num_ids == 20 and cfg.assoc_dim == dim
    model = IAICondInst.from_config(cfg).eval()
    assert model.projector.rest.out_channels == c5 - 2 * dim
    assert model.id_bank.embed.in_channels == 21 and model.id_bank.embed.out_channels == dim
    images = torch.randn(1, 3, 64, 64)
    memory = model.new_memory()
    with torch.no_grad():
        out = model.forward_frame(images, memory)
        n_loc = _num_locations(64, 64)
        assert out.heads.cls_logits.shape == (1, n_loc, classes)
        assert out.id_logits.shape == (1, n_loc, 20)
        assert out.block.out.shape == (1, dim, 2, 2) and out.block.keys.shape == (1, 4, dim)
        model._write(memory, 0, out.block, torch.full((1, 64, 64), 20))
        out2 = model.forward_frame(images, memory)  # with global and local memory
    assert out2.id_logits.shape == (1, n_loc, 20)
    assert not torch.allclose(out2.id_logits, out.id_logits)


def _clip_targets(h=64, w=96):
    """Two objects: A (identity 4) in frames 0-2, B (identity 2) from frame 1."""
    a = torch.zeros(h, w, dtype=torch.bool)
    a[8:40, 10:50] = True
    b = torch.zeros(h, w, dtype=torch.bool)
    b[28:60, 56:90] = True
    box_a, box_b = [10.0, 8, 50, 40], [56.0, 28, 90, 60]

    def frame(objs):
        return {"boxes": torch.tensor([o[0] for o in objs]).reshape(-1, 4),
                "labels": torch.tensor([o[1] for o in objs], dtype=torch.long),
                "masks": torch.stack([o[2] for o in objs]) if objs else
                torch.zeros(0, h, w, dtype=torch.bool),
                "ids": torch.tensor([o[3] for o in objs], dtype=torch.long)}

    oa, ob = (box_a, 0, a, 4), (box_b, 1, b, 2)
    return [frame([oa]), frame([oa, ob]), frame([ob, oa])], a, b


@pytest.mark.parametrize("order", ["appearance", "random"])
def test_training_forward_teacher_forcing(monkeypatch, order):
    torch.manual_seed(0)
    model = _tiny().train()
    model.slot_order = order
    clip_t, a, b = _clip_targets()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
             "masks": torch.zeros(0, 64, 96, dtype=torch.bool),
             "ids": torch.zeros(0, dtype=torch.long)}
    targets = [clip_t, [empty, clip_t[0], clip_t[0]]]  # second clip: A appears at frame 1
    written = []
    original = model._write

    def spy(memory, frame, block, labels):
        written.append((frame, labels.clone()))
        return original(memory, frame, block, labels)

    monkeypatch.setattr(model, "_write", spy)
    images = torch.randn(2, 3, 3, 64, 96)
    # slot of the k-th object to appear in each clip: 0, 1, ... or the two permutations the
    # forward draws first (one per clip) from the seeded global RNG
    torch.manual_seed(7)
    perms = ([list(range(19))] * 2 if order == "appearance" else
             [torch.randperm(19).tolist() for _ in range(2)])
    torch.manual_seed(7)
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box", "loss_ctr", "loss_mask", "loss_id"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    # memory written with the ground-truth ID masks after frames 0 and 1 (not after the last)
    assert [f for f, _ in written] == [0, 1]
    bg = 20
    want0 = torch.full((2, 64, 96), bg)
    want0[0][a] = perms[0][0]  # clip 0: A is the first object (slot 0 in appearance order)
    assert torch.equal(written[0][1], want0)  # clip 1 frame 0 has no object
    want1 = torch.full((2, 64, 96), bg)
    want1[0][a] = perms[0][0]
    want1[0][b & ~a] = perms[0][1]  # B (identity 2) is the second object (slot 1)
    want1[1][a] = perms[1][0]  # clip 1: A first seen in frame 1, its first object
    assert torch.equal(written[1][1], want1)
    sum(losses.values()).backward()
    for name in ["id_head.logits.weight", "id_bank.embed.weight", "block.to_value.weight",
                 "block.global_out.weight", "block.local_out.weight", "projector.rest.weight",
                 "condinst.head.cls_logits.weight"]:
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_batched_training_equals_frame_by_frame(monkeypatch):
    """The training path (backbone / heads batched over B*T, block looped) computes the same ID
    logits as streaming the clip through forward_frame with the same ground-truth memory."""
    torch.manual_seed(0)
    model = _tiny().eval()  # no DropPath, BatchNorm running statistics
    model.slot_order = "appearance"  # the slot maps below (random order: the test above)
    clip_t, a, b = _clip_targets()
    clips = torch.randn(1, 3, 3, 64, 96)
    captured = []
    original = model._heads

    def spy(images, feats, lazy_controller=False):
        out = original(images, feats, lazy_controller)
        captured.append(out[1].detach())
        return out

    monkeypatch.setattr(model, "_heads", spy)
    with torch.no_grad():
        model(clips, [clip_t])
        batched = captured.pop()  # [T, L, N]
        memory = model.new_memory()
        slot_maps = [torch.full((1, 64, 96), 20), torch.full((1, 64, 96), 20)]
        slot_maps[0][0][a] = 0
        slot_maps[1][0][a] = 0
        slot_maps[1][0][b & ~a] = 1
        for f in range(3):
            out = model.forward_frame(clips[:, f], memory)
            assert torch.allclose(out.id_logits[0], batched[f], atol=1e-4), f
            if f < 2:
                model._write(memory, f, out.block, slot_maps[f])


def test_training_forward_rejects_missing_ids():
    model = _tiny().train()
    clip_t, _, _ = _clip_targets()
    del clip_t[1]["ids"]
    with pytest.raises(ValueError):
        model(torch.randn(1, 3, 3, 64, 96), [clip_t])


def test_detect_and_write_memory():
    torch.manual_seed(1)
    model = _tiny(cls_thr=0.0, id_thr=0.0, max_detections=5).train()
    state = model.new_state()
    image = torch.randn(1, 3, 64, 96)
    dets = model.detect(image, state, image_size=(60, 90), output_size=(30, 45))
    assert model.training  # restored
    k = len(dets)
    assert 1 <= k <= 5
    assert dets.boxes.shape == (k, 4) and dets.class_probs.shape == (k, 3)
    assert dets.id_probs.shape == (k, 20) and dets.centerness.shape == (k,)
    assert dets.masks.shape == (k, 30, 45) and dets.masks.dtype == torch.bool
    assert dets.masks.sum(0).max() <= 1  # painted: disjoint
    assert torch.all(dets.scores[:-1] >= dets.scores[1:])
    pending = state.pending.masks
    assert pending.shape == (k, 64, 96)  # the padded input frame, nothing outside the valid area
    assert not pending[:, 60:].any() and not pending[:, :, 90:].any()
    assert model.write_memory(state, torch.arange(k))  # frame 0 always enters the global memory
    assert state.pending is None and len(state.memory) == 1
    assert state.memory.seen[0, :k].tolist() == [bool(m.any()) for m in pending]
    with pytest.raises(ValueError):
        model.write_memory(state, torch.arange(k))  # nothing pending
    dets2 = model.detect(image, state)  # frame 1, with memory
    assert state.frame_index == 2 and dets2.masks.shape[1:] == (64, 96)
    with pytest.raises(ValueError):
        model.write_memory(state, torch.arange(len(dets2) + 1))
    labels = torch.full((1, 64, 96), 20)
    labels[0, :10, :10] = 7  # a new slot -> stored globally at once
    assert model.write_memory_labels(state, labels)
    assert state.memory.global_frames == [0, 1]
    with pytest.raises(ValueError):
        model.detect(torch.randn(2, 3, 64, 96), state)


def test_without_association():
    torch.manual_seed(0)
    model = _tiny(use_association=False)
    assert model.block is None and model.id_bank is None and model.projector is None
    clip_t, _, _ = _clip_targets()
    losses = model.train()(torch.randn(1, 3, 3, 64, 96), [clip_t])
    assert torch.isfinite(losses["loss_id"])
    state = model.new_state()
    dets = model.detect(torch.randn(1, 3, 64, 96), state)
    assert not model.write_memory(state, torch.zeros(len(dets), dtype=torch.long))
    assert len(state.memory) == 0


def _logit(p):
    return math.log(p / (1 - p))


def test_select_candidates_by_hand():
    # 5 locations, 2 classes, 3 ID slots; every box is location +- 5 px
    locations = torch.tensor([[10.0, 10], [12, 10], [50, 50], [90, 10], [50, 90]])
    ltrb = torch.full((5, 4), 5.0)
    cls = torch.tensor([[0.8, 0.1], [0.2, 0.9], [0.05, 0.01], [0.5, 0.2], [0.9, 0.3]])
    ids = torch.tensor([[0.6, 0.1, 0.1], [0.1, 0.1, 0.9], [0.9, 0.01, 0.01], [0.05, 0.01, 0.02],
                        [0.1, 0.2, 0.1]])
    ctr = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.8])
    args = (cls.logit(), ids.logit(), ctr.logit(), ltrb, locations, (100, 100))
    # location 2 fails the class threshold, 3 the ID threshold; 0 overlaps 1 (IoU 80/120)
    # frame 0 (1, 0.5): 0 -> (0.8+0.3)0.5 = 0.55, 1 -> (0.9+0.45)0.5 = 0.675,
    # 4 -> (0.9+0.1)0.8 = 0.8
    loc, score, boxes = select_iai_candidates(*args, weights=(1.0, 0.5))
    assert loc.tolist() == [4, 1]
    assert score.tolist() == pytest.approx([0.8, 0.675], abs=1e-5)
    assert torch.allclose(boxes, torch.tensor([[45.0, 85, 55, 95], [7, 5, 17, 15]]))
    # later frames (0.5, 1): 1 -> (0.45+0.9)0.5 = 0.675, 4 -> (0.45+0.2)0.8 = 0.52
    loc, score, _ = select_iai_candidates(*args, weights=(0.5, 1.0))
    assert loc.tolist() == [1, 4]
    assert score.tolist() == pytest.approx([0.675, 0.52], abs=1e-5)
    loc, _, boxes = select_iai_candidates(*args[:-1], (12, 16), weights=(0.5, 1.0),
                                          max_detections=1)  # boxes clipped to a 12 x 16 image
    assert loc.tolist() == [1] and torch.allclose(boxes, torch.tensor([[7.0, 5, 16, 12]]))


def test_paint_masks_by_hand():
    masks = torch.zeros(4, 4, 5, dtype=torch.bool)
    masks[0, 0:2] = True                      # 10 px
    masks[1, 0:2] = True
    masks[1, 2, 0] = True                     # 11 px, keeps 1: loses 10/11 > 90 % -> dropped
    masks[2, 1:3] = True                      # 10 px, keeps row 2 (5): loses 50 % -> kept
    # mask 3 empty -> dropped
    painted, keep = paint_masks(masks)
    assert keep.tolist() == [True, False, True, False]
    assert torch.equal(painted[0], masks[0])
    want = torch.zeros(4, 5, dtype=torch.bool)
    want[2] = True
    assert torch.equal(painted[1], want)
    # exactly 90 % lost is not "more than 90 %"
    strip = torch.zeros(3, 1, 20, dtype=torch.bool)
    strip[0, 0, :9] = True
    strip[1, 0, :10] = True                   # loses 9 / 10
    strip[2, 0, :11] = True                   # loses 10 / 11
    painted, keep = paint_masks(strip)
    assert keep.tolist() == [True, True, False]
    assert painted[1].nonzero().tolist() == [[0, 9]]
    empty, keep = paint_masks(torch.zeros(0, 3, 3, dtype=torch.bool))
    assert empty.shape == (0, 3, 3) and keep.shape == (0,)


def ref_paint_masks(masks, max_lost=0.9):
    """The one-by-one pass: each mask, best first, keeps the pixels no kept mask took."""
    taken = torch.zeros(masks.shape[-2:], dtype=torch.bool)
    keep, painted = [], []
    for m in masks:
        area = int(m.sum())
        own = m & ~taken
        if area == 0 or area - int(own.sum()) > max_lost * area:
            keep.append(False)
            continue
        keep.append(True)
        taken |= own
        painted.append(own)
    return painted, keep


@pytest.mark.parametrize("seed", range(6))
def test_paint_masks_matches_the_one_by_one_pass(seed):
    # overlapping random boxes, some nested (dropped), some empty: drops change what later masks
    # lose, which the all-at-once version must reproduce
    g = torch.Generator().manual_seed(seed)
    k, h, w = 12, 24, 30
    masks = torch.zeros(k, h, w, dtype=torch.bool)
    for i in range(k):
        if i % 5 == 4:
            continue  # empty
        y0, x0 = torch.randint(0, h - 4, (2,), generator=g).tolist()[0], \
            torch.randint(0, w - 4, (1,), generator=g).item()
        y1 = y0 + torch.randint(2, 12, (1,), generator=g).item()
        x1 = x0 + torch.randint(2, 14, (1,), generator=g).item()
        masks[i, y0:y1, x0:x1] = True
    for max_lost in (0.9, 0.5, 0.2):
        painted, keep = paint_masks(masks, max_lost)
        want, want_keep = ref_paint_masks(masks, max_lost)
        assert keep.tolist() == want_keep
        assert len(painted) == len(want) and all(torch.equal(a, b) for a, b in zip(painted, want))
    assert not all(ref_paint_masks(masks, 0.2)[1][i] for i in range(k) if i % 5 != 4)


def test_default_config_is_the_paper_architecture():
    cfg, paper = IAICondInstConfig(), IAICondInstConfig.paper(pretrained=None)
    assert cfg == paper  # the defaults are the paper's, with a random-init backbone
    assert IAICondInstConfig.paper().condinst.pretrained == "imagenet"


def test_stride16_variant_shapes_and_memory_resolution():
    """assoc_level c4: the block, ID bank and memory run at stride 16; every FPN level still gets
    the block's output (C4 by concatenation, C5 by the pooled copy), so P5's ID logits depend on
    the memory too."""
    torch.manual_seed(0)
    cfg = IAICondInstConfig.cpu(num_classes=3)
    cfg.condinst = CondInstConfig(num_classes=3, fpn_channels=32, num_convs=1,
                                  mask_branch_channels=16, mask_branch_convs=1,
                                  size_boundaries=(32, 64, 128, 256), max_proposals=16)
    cfg.assoc_level, cfg.assoc_dim, cfg.ffn_dim = "c4", 48, 96  # 2 x 48 = MobileNetV2's C4
    model = IAICondInst.from_config(cfg).eval()
    assert model.id_bank.stride == 16 and model.id_bank.embed.kernel_size == (17, 17)
    assert model.projector.rest is None and model.projector.top_rest.out_channels == 320 - 48
    images = torch.randn(1, 3, 64, 96)
    memory = model.new_memory()
    with torch.no_grad():
        out = model.forward_frame(images, memory)
        assert out.block.out.shape == (1, 48, 4, 6) and out.block.keys.shape == (1, 24, 48)
        labels = torch.full((1, 64, 96), 20)
        labels[0, 8:40, 8:40] = 0
        model._write(memory, 0, out.block, labels)
        out2 = model.forward_frame(images, memory)
    ids1, ids2 = out.id_logits[0], out2.id_logits[0]
    p5 = out.heads.levels == 2  # P5 locations: fed by C5 alone in the FPN
    assert p5.any() and not torch.allclose(ids1[p5], ids2[p5])
    with pytest.raises(ValueError):
        _tiny(assoc_level="c3")
