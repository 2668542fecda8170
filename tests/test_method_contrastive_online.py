"""contrastive-online: per-frame inference rules on hand-made inputs, the key / reference pairing,
the tracker choice, and the paper / bench configs building and running forward."""
import numpy as np
import pytest
import torch

from tubelet.engine.config import load_experiment
from tubelet.errors import InputError
from tubelet.methods import build_method
from tubelet.methods.contrastive_online import (ContrastiveOnlineConfig, frame_instances,
                                                select_queries)
from tubelet.methods.contrastive_online.inference import (ablation_prefilter, boxes_to_frame,
                                                          masks_to_frame)
from tubelet.models.deformable_detr import DeformableDETRConfig, contrastive_items
from tubelet.structures import FrameInstances
from tubelet.trackers import MemoryConfig

torch.set_num_threads(1)


def tiny_cfg(**kw) -> ContrastiveOnlineConfig:
    det = DeformableDETRConfig.cpu(num_classes=3, pretrained=None, d_model=16, n_heads=2,
                                   dim_feedforward=32, num_queries=6, n_points=1,
                                   mask_branch_channels=8, embed_dim=8)
    return ContrastiveOnlineConfig(model=det, test_short_side=32, **kw)


# ------------------------------------------------------------------ per-frame rules
def test_select_queries_threshold_order_ties_fallback():
    prob = torch.tensor([[0.05, 0.3], [0.1, 0.0], [0.8, 0.2], [0.3, 0.01], [0.0, 0.11]])
    # max per query: 0.3, 0.1, 0.8, 0.3, 0.11; > 0.1 strictly; tie 0.3 keeps index order (0, 3)
    assert select_queries(prob, 0.1).tolist() == [2, 0, 3, 4]
    assert select_queries(prob, 0.9).tolist() == [2]  # none passes: the top-1 only
    assert select_queries(prob[:0], 0.1).tolist() == []


def test_boxes_to_frame_by_hand():
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.1, 0.9, 0.4, 0.4]])  # cxcywh normalised
    out = boxes_to_frame(boxes, (100, 200))  # (H, W)
    # [50, 25, 150, 75]; second: x -0.1..0.3 -> clipped 0..60, y 0.7..1.1 -> 70..100
    assert torch.allclose(out, torch.tensor([[50., 25., 150., 75.], [0., 70., 60., 100.]]))


def test_masks_to_frame_upsample_crop_resize():
    logits = torch.full((1, 2, 2), -10.0)
    logits[0, 0, 0] = 10.0  # the top-left stride-4 cell
    # x4 bilinear (half-pixel centres): pixel 3 reads 0.625 of cell 0 and 0.375 of cell 1
    # (0.625 * 10 - 0.375 * 10 = 2.5 > 0), pixel 4 the reverse (< 0); the corner (3, 3) reads
    # 0.625^2 = 0.39 of the positive cell: 0.39 * 10 - 0.61 * 10 < 0
    m = masks_to_frame(logits, (8, 8), (8, 8), 0.5)
    want = np.zeros((8, 8), bool)
    want[:4, :4] = True
    want[3, 3] = False
    assert np.array_equal(m[0].numpy(), want)
    # input 6 x 8 (2 x 2 cells cover 8 x 8): crop rows 6, 7 away before resizing to 12 x 16
    m = masks_to_frame(logits, (6, 8), (12, 16), 0.5)
    assert m.shape == (1, 12, 16)
    # column 0 after the crop reads (10, 10, 7.5, 2.5, -2.5, -7.5) down rows 0..5; x2: row 7
    # reads 0.75 * 2.5 + 0.25 * -2.5 > 0, row 8 0.25 * 2.5 + 0.75 * -2.5 < 0
    assert m[0, :, 0].tolist() == [True] * 8 + [False] * 4
    assert not m[0, :, 8:].any()
    assert masks_to_frame(logits[:0], (8, 8), (5, 5), 0.5).shape == (0, 5, 5)


def test_frame_instances_fields_and_order():
    prob = torch.tensor([[0.05, 0.02], [0.2, 0.6], [0.5, 0.4], [0.01, 0.09]])  # Q=4, C=2
    boxes = torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 4)
    embeds = torch.arange(8, dtype=torch.float32).view(4, 2)  # row q = (2q, 2q+1)
    asked = []

    def mask_fn(q):
        asked.append(q.tolist())
        out = torch.full((len(q), 2, 2), -5.0)
        out[:, 0, 0] = 5.0
        return out

    inst = frame_instances(prob, boxes, embeds, mask_fn, (8, 8), (4, 4), [7, 9], 0.1, 0.5)
    assert asked == [[1, 2]]  # masks decoded only for the kept queries, best first
    assert inst.scores.tolist() == pytest.approx([0.6, 0.5])
    assert inst.labels.tolist() == [9, 7]  # column -> dataset category id
    assert np.allclose(inst.class_probs, [[0.2, 0.6], [0.5, 0.4]])
    assert inst.embeddings.tolist() == [[2, 3], [4, 5]]
    assert np.allclose(inst.boxes, [[0, 0, 4, 4]] * 2)
    assert inst.masks.shape == (2, 4, 4) and inst.masks[:, :2, :2].all()
    assert inst.masks.sum() == 8


def test_ablation_prefilter_is_the_memory_trackers_filter():
    m = np.zeros((4, 4, 8), bool)
    m[0, :, :4] = True
    m[1, :, :4] = True   # same mask as 0: removed by mask NMS (IoU 1 >= 0.5)
    m[2, :, 4:] = True
    m[3, :, 4:6] = True  # IoU 0.5 with 2: removed (suppresses IoU >= thr)
    boxes = np.array([[0, 0, 4, 4], [0, 0, 4, 4], [4, 0, 8, 4], [4, 0, 6, 4]], float)
    inst = FrameInstances(m, [0.9, 0.8, 0.7, 0.6], [1, 1, 1, 2], boxes=boxes)
    out = ablation_prefilter(inst, MemoryConfig())
    assert out.scores.tolist() == [0.9, 0.7]
    low = FrameInstances(m[:2], [0.05, 0.08], [1, 1])  # none > 0.1: the top-1 only
    assert ablation_prefilter(low, MemoryConfig()).scores.tolist() == [0.08]


# ------------------------------------------------------------------ tracker choice
def test_tracker_choice_and_detect_filters():
    torch.manual_seed(0)
    with pytest.raises(InputError, match="tracker"):
        build_method("contrastive-online", tiny_cfg(tracker="nope"))
    mem = build_method("contrastive-online", tiny_cfg(score_thr=0.0))
    assert mem.provided_fields() == {"class_probs", "embeddings", "boxes"}
    frame = np.random.RandomState(0).randint(0, 255, (32, 48, 3), dtype=np.uint8)
    inst = mem.detect_frame(frame)
    assert len(inst) == 6 and inst.masks.shape == (6, 32, 48)  # all queries: memory filters
    greedy = build_method("contrastive-online", tiny_cfg(score_thr=0.0, tracker="greedy"))
    greedy.load_state_dict(mem.state_dict())
    g = greedy.detect_frame(frame)
    want = ablation_prefilter(inst, MemoryConfig())  # the memory tracker's own filter
    assert np.allclose(g.scores, want.scores) and np.array_equal(g.masks, want.masks)
    none = build_method("contrastive-online", tiny_cfg(tracker="none"))
    assert none.make_tracker().name == "none"


# ------------------------------------------------------------------ key / reference pairing
def test_pairs_align_objects_by_identity():
    torch.manual_seed(0)
    model = build_method("contrastive-online", tiny_cfg()).train()
    q, h, w = 6, 32, 32
    out = {"pred_boxes": torch.rand(2, q, 4) * 0.5 + 0.25, "contrast_embeds": torch.randn(2, q, 8)}
    prob = torch.rand(2, q, 3)
    key = {"ids": torch.tensor([5, 7, 9]), "labels": torch.tensor([0, 1, 2])}
    ref = {"ids": torch.tensor([9, 5]), "labels": torch.tensor([2, 0])}  # 7 absent, order differs
    gt = [torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]]),
          torch.tensor([[0.72, 0.7, 0.2, 0.2], [0.32, 0.3, 0.2, 0.2]])]
    a, p, n = model._pair(out, prob, 0, 1, [key, ref], gt)
    # by hand: object 5 -> ref row 1, 7 -> absent, 9 -> ref row 0
    ref_boxes = torch.stack([gt[1][1], torch.zeros(4), gt[1][0]])
    a2, p2, n2 = contrastive_items(prob[0], out["pred_boxes"][0], out["contrast_embeds"][0],
                                   prob[1], out["pred_boxes"][1], out["contrast_embeds"][1],
                                   key["labels"], gt[0], ref_boxes,
                                   torch.tensor([True, False, True]))
    assert a.shape == (2, 8) and torch.equal(a, a2)
    assert all(torch.equal(x, y) for x, y in zip(p + n, p2 + n2))


def test_training_forward_losses():
    torch.manual_seed(0)
    model = build_method("contrastive-online", tiny_cfg()).train()
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 8:20, 8:20] = True
    tg = {"masks": mask, "boxes": torch.tensor([[8., 8., 20., 20.]]), "labels": torch.tensor([1]),
          "ids": torch.tensor([3]), "first": torch.tensor([True])}
    batch = {"images": torch.randint(0, 255, (1, 2, 3, 32, 32), dtype=torch.uint8),
             "targets": [[tg, dict(tg)]]}
    out = model(batch)
    for k in ("loss_class", "loss_bbox", "loss_giou", "loss_mask", "loss_dice",
              "loss_class_0", "loss_mask_0", "loss_contrast", "loss_contrast_aux"):
        assert k in out and torch.isfinite(out[k]), k
    assert "loss_contrast_0" not in out  # no deep supervision for the contrastive loss
    assert float(out["num_anchors"]) == 1.0
    sum(v for k, v in out.items() if k.startswith("loss")).backward()
    # an object on the key frame only: no anchor, zero contrastive losses still in the graph
    empty = {"masks": mask[:0], "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
             "ids": torch.zeros(0, dtype=torch.long), "first": torch.zeros(0, dtype=torch.bool)}
    out = model({"images": batch["images"], "targets": [[tg, empty]]})
    assert float(out["num_anchors"]) == 0 and float(out["loss_contrast"].detach()) == 0.0
    assert out["loss_contrast"].requires_grad


# ------------------------------------------------------------------ presets
def _batch(h=64, w=64):
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[0, 10:40, 12:44] = True
    tg = {"masks": mask, "boxes": torch.tensor([[12., 10., 44., 40.]]),
          "labels": torch.tensor([0]), "ids": torch.tensor([1]), "first": torch.tensor([True])}
    return {"images": torch.randint(0, 255, (1, 2, 3, h, w), dtype=torch.uint8),
            "targets": [[tg, dict(tg)]]}


def test_paper_config_builds_and_runs():
    cfg = load_experiment("configs/contrastive_online_paper.yaml", ["model.model.pretrained=null"])
    m, t = cfg.model.model, cfg.train
    assert (m.backbone, m.enc_layers, m.dec_layers, m.num_queries, m.d_model, m.dim_feedforward,
            m.n_heads, m.num_levels, m.n_points) == ("resnet50", 6, 6, 300, 256, 1024, 8, 4, 4)
    assert (t.optimizer, t.backbone_lr_mult, t.grad_clip, t.max_iters) == ("adamw", 0.1, 0.01, 12000)
    assert (cfg.model.contrast_weight, cfg.model.aux_weight, cfg.model.tracker) == (2.0, 3.0, "memory")
    torch.manual_seed(0)
    model = build_method(cfg.method, cfg.model).train()
    with torch.no_grad():  # the training forward (losses), without the graph: time
        out = model(_batch())
    assert all(torch.isfinite(v) for v in out.values())
    assert sum(1 for k in out if k.startswith("loss_class")) == 6  # deep supervision, 6 layers


def test_bench_config_builds_and_runs():
    cfg = load_experiment("configs/contrastive_online_bench.yaml", ["model.model.pretrained=null"])
    assert cfg.data.clip.num_frames == 2 and tuple(cfg.data.clip.gap_range) == (1, 10)
    torch.manual_seed(0)
    model = build_method(cfg.method, cfg.model).train()
    out = model(_batch())
    assert all(torch.isfinite(v) for v in out.values())
    model.eval()
    frame = np.random.RandomState(1).randint(0, 255, (48, 80, 3), dtype=np.uint8)
    video = model.predict_video([frame, frame]).result()
    assert video.length == 2


@pytest.mark.parametrize("random_key", [True, False])
def test_key_frame_choice(random_key, monkeypatch):
    torch.manual_seed(0)
    model = build_method("contrastive-online", tiny_cfg(random_key=random_key)).train()
    seen = []

    def record(out, prob, k, r, targets, gt):
        seen.append((k, r))
        return out["contrast_embeds"][k][:0], [], []

    monkeypatch.setattr(model, "_pair", record)
    batch = _batch(32, 32)
    batch = {"images": batch["images"].repeat(4, 1, 1, 1, 1), "targets": batch["targets"] * 4}
    with torch.no_grad():
        model(batch)
    # clip i holds images 2i, 2i + 1; the key is one of them, the reference the other
    assert [sorted(p) for p in seen] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    keys_first = [k < r for k, r in seen]
    assert all(keys_first) if not random_key else (any(keys_first) and not all(keys_first))
