"""iai-condinst: the method's inference rules on hand-made detections (what goes to the tracker,
which IDs the memory is written with, the video output), the real detect / write-memory loop,
the ablation switches, and the bench / DAVIS / paper configs building and running a forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tubelet.engine.config import load_experiment
from tubelet.errors import InputError
from tubelet.methods import build_method
from tubelet.methods.iai_condinst import IAIMethod, SlotMap, to_frame_instances
from tubelet.models.iai import IAIDetections
from tubelet.structures import rle as rle_ops

H, W = 16, 24  # frame size of the hand-made videos


def _tiny_method(*overrides: str) -> IAIMethod:
    torch.manual_seed(0)
    cfg = load_experiment("configs/iai_condinst_tiny.yaml", list(overrides))
    return build_method(cfg.method, cfg.model)


def _box_mask(x0, y0, x1, y1):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _dets(cls, ctr, ids, boxes, scores=None, c=2, n=4):
    """Hand-made IAIDetections: K rows of class probs [C], centerness, ID probs [N], box masks."""
    k = len(cls)
    cls_t = torch.tensor(cls, dtype=torch.float32).reshape(k, c)
    return IAIDetections(
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(k, 4),
        scores=torch.tensor(scores if scores is not None else [1.0 - 0.1 * i for i in range(k)]),
        labels=cls_t.argmax(dim=1) if k else torch.zeros(0, dtype=torch.long),
        class_probs=cls_t, id_probs=torch.tensor(ids, dtype=torch.float32).reshape(k, n),
        centerness=torch.tensor(ctr, dtype=torch.float32).reshape(k),
        masks=(torch.stack([_box_mask(*map(int, b)) for b in boxes]) if k
               else torch.zeros(0, H, W, dtype=torch.bool)),
        locations=torch.zeros(k, 2), levels=torch.zeros(k, dtype=torch.long))


def test_to_frame_instances_by_hand():
    det = _dets(cls=[[0.8, 0.1, 0.3], [0.2, 0.6, 0.1]], ctr=[0.5, 0.25],
                ids=[[0.1, 0.2, 0.9], [0.7, 0.1, 0.2]], boxes=[[0, 0, 4, 4], [8, 8, 12, 16]],
                scores=[0.9, 0.4], c=3, n=3)
    inst = to_frame_instances(det, [3, 5, 7])
    # class probability x centerness, row by row (the video score averages these)
    np.testing.assert_allclose(inst.class_probs, [[0.4, 0.05, 0.15], [0.05, 0.15, 0.025]],
                               rtol=1e-6)
    assert inst.labels.tolist() == [3, 5]  # argmax column -> dataset category id
    np.testing.assert_allclose(inst.scores, [0.9, 0.4], rtol=1e-6)  # rank order kept
    np.testing.assert_allclose(inst.id_probs, [[0.1, 0.2, 0.9], [0.7, 0.1, 0.2]], rtol=1e-6)
    assert inst.masks.shape == (2, H, W) and inst.masks[0, :4, :4].all()
    assert inst.masks[0].sum() == 16
    assert inst.boxes.tolist() == [[0, 0, 4, 4], [8, 8, 12, 16]]
    empty = to_frame_instances(_dets([], [], [], [], c=1), [1])
    assert len(empty) == 0 and empty.image_size == (H, W)


def test_slot_map_orders_identities_and_caps():
    iai_like = SlotMap(num_ids=5)  # slots 0..3
    # IAI hands out 0, 1, then 2 (a newcomer after existing IDs): the map is the identity
    assert iai_like(np.array([0, 1])).tolist() == [0, 1]
    assert iai_like(np.array([1, -1, 2, 0])).tolist() == [1, -1, 2, 0]
    greedy = SlotMap(num_ids=3)  # slots 0 and 1 only
    assert greedy(np.array([7, 3, -1])).tolist() == [0, 1, -1]
    assert greedy(np.array([12, 3, 7])).tolist() == [-1, 1, 0]  # 12 came after the slots ran out
    assert greedy(np.array([12])).tolist() == [-1]  # and never gets one
    with pytest.raises(ValueError):
        SlotMap(1)


def _script():
    """Three frames, N = 4 slots (IDs 0..2, 3 = "new"), C = 2 classes (category ids 1, 2).

    frame 0: A, B both "new" -> IDs 0, 1 (input order).
    frame 1: B' (ID 1 at 0.9), A' (ID 0 at 0.8), C ("new" 0.7) -> 1, 0, 2.
    frame 2: D ("new", but IDs 0..2 are all taken: discarded), A'' (ID 0 at 0.9) -> -1, 0.
    """
    return [
        _dets(cls=[[0.8, 0.1], [0.1, 0.9]], ctr=[0.5, 0.5],
              ids=[[0.1, 0.1, 0.1, 0.9], [0.2, 0.1, 0.1, 0.8]],
              boxes=[[0, 0, 4, 4], [10, 0, 14, 4]]),
        _dets(cls=[[0.0, 0.3], [0.6, 0.2], [0.3, 0.3]], ctr=[0.5, 1.0, 0.4],
              ids=[[0.2, 0.9, 0.1, 0.1], [0.8, 0.3, 0.1, 0.1], [0.3, 0.2, 0.1, 0.7]],
              boxes=[[10, 0, 14, 4], [0, 0, 4, 4], [0, 10, 4, 14]]),
        _dets(cls=[[0.9, 0.9], [0.5, 0.0]], ctr=[0.9, 0.4],
              ids=[[0.1, 0.1, 0.1, 0.9], [0.9, 0.2, 0.1, 0.1]],
              boxes=[[18, 10, 22, 14], [1, 1, 5, 5]]),
    ]


def _scripted(method: IAIMethod):
    """Replace the network's detect / write_memory with the script and a recorder."""
    script, written, frames = _script(), [], []

    def detect(image, state, image_size=None, output_size=None):
        assert output_size == (H, W)
        frames.append(state)
        return script[len(frames) - 1]

    def write_memory(state, ids):
        written.append(ids.tolist())
        return True

    method.iai.detect, method.iai.write_memory = detect, write_memory
    return written, frames


def test_scripted_video_ids_memory_and_video_output():
    method = _tiny_method("model.model.num_ids=4", "model.model.condinst.num_classes=2")
    written, states = _scripted(method)
    video = np.zeros((3, H, W, 3), dtype=np.uint8)
    stream = method.predict_video(video)
    outs = list(stream)
    result = stream.result()
    # the memory is written once per frame with the IDs the Hungarian assigner picked
    assert written == [[0, 1], [1, 0, 2], [-1, 0]]
    assert len({id(s) for s in states}) == 1  # one state for the whole video
    assert [o.track_ids.tolist() for o in outs] == [[0, 1], [1, 0, 2], [0]]  # D dropped
    np.testing.assert_allclose(outs[2].scores, [0.9], rtol=1e-6)  # A'' was second in frame 2
    assert rle_ops.decode(outs[2].masks[0])[1:5, 1:5].all()
    # video output: per ID, class prob x centerness summed over the frames / T = 3:
    #   ID 0: ([0.4, 0.05] + [0.6, 0.2] + [0.2, 0.0]) / 3 = [0.4, 0.0833]
    #   ID 1: ([0.05, 0.45] + [0.0, 0.15]) / 3 = [0.0167, 0.2]
    #   ID 2: [0.12, 0.12] / 3 = 0.04 (not > 0.05); D never became an ID
    recs = sorted(zip(result.scores.tolist(), result.track_ids.tolist(), result.labels.tolist()),
                  reverse=True)
    assert [(t, c) for _, t, c in recs] == [(0, 1), (1, 2), (0, 2)]
    np.testing.assert_allclose([s for s, _, _ in recs], [0.4, 0.2, 0.25 / 3], rtol=1e-5)
    assert result.length == 3 and result.masks[0][2] is not None and result.masks[1][2] is None

    # top 2 (ID, class) pairs only; a new video starts from a fresh state and fresh IDs
    method.cfg.iai.top_k = 2
    written2, states2 = _scripted(method)  # the script from frame 0 again
    result2 = method.predict_video(video).result()
    assert written2 == [[0, 1], [1, 0, 2], [-1, 0]]
    assert states2[0] is not states[0]
    assert sorted(result2.scores.tolist(), reverse=True) == pytest.approx([0.4, 0.2], rel=1e-5)


def test_reset_video_gives_a_fresh_memory():
    method = _tiny_method()
    method.reset_video()
    first = method._state
    method.reset_video()
    assert method._state is not first and len(method._state.memory) == 0
    assert method._state.frame_index == 0


def test_real_model_writes_memory_with_tracker_ids():
    """Untrained tiny model with the gates opened (cls_thr = id_thr = 0): detections come out,
    and the memory's slots are exactly the identities the assigner emitted."""
    method = _tiny_method("model.model.cls_thr=0", "model.model.id_thr=0",
                          "model.model.max_detections=3")
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, size=(4, 48, 72, 3), dtype=np.uint8)
    outs = list(method.predict_video(video))
    assert len(outs) == 4 and all(len(o.track_ids) <= 3 for o in outs)
    emitted = sorted({int(t) for o in outs for t in o.track_ids})
    assert emitted  # something was detected and tracked
    mem = method._state.memory
    seen = torch.nonzero(mem.seen[0]).flatten().tolist()
    assert seen == emitted  # slot k written <=> ID k assigned (the map is the identity for iai)
    assert len(mem) >= 1 and mem.local_key is not None
    assert method._state.pending is None  # every detected frame was written
    for o in outs:  # disjoint painted masks, valid RLEs at the frame size
        dense = np.stack([rle_ops.decode(m) for m in o.masks]) if o.masks else np.zeros((0,))
        if len(dense):
            assert dense.shape[1:] == (48, 72) and dense.sum(0).max() <= 1


def _one_object_batch(h, w, box, label, ident):
    """A 2-frame random clip [1, 2, 3, h, w] with one box-shaped object (x1, y1, x2, y2) in both
    frames."""
    x1, y1, x2, y2 = box
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y1:y2, x1:x2] = True
    tg = {"masks": mask[None], "boxes": torch.tensor([[float(x1), y1, x2, y2]]),
          "labels": torch.tensor([label]), "ids": torch.tensor([ident])}
    clip = torch.randint(0, 255, (1, 2, 3, h, w), dtype=torch.uint8)
    return {"images": clip, "targets": [[tg, dict(tg)]]}


@pytest.mark.parametrize("overrides", [
    ["model.tracker=greedy", "model.model.use_association=false", "model.model.id_thr=0",
     "model.model.id_loss_weight=0", "model.model.first_frame_weights=[1,0]",
     "model.model.later_weights=[1,0]", "model.model.cls_thr=0"],  # per-frame CondInst + greedy
    ["model.model.use_association=false", "model.model.cls_thr=0", "model.model.id_thr=0"],
    ["model.model.use_global=false", "model.model.cls_thr=0", "model.model.id_thr=0"],
    ["model.model.use_local=false", "model.model.cls_thr=0", "model.model.id_thr=0"],
    ["model.model.use_projector=false", "model.model.cls_thr=0", "model.model.id_thr=0"],
])
def test_ablation_rows_train_and_predict(overrides):
    method = _tiny_method(*overrides)
    if "model.model.use_association=false" in overrides:
        assert method.iai.block is None and method.iai.projector is None
    losses = method(_one_object_batch(64, 64, (8, 8, 40, 40), label=2, ident=0))
    assert set(losses) == {"loss_cls", "loss_box", "loss_ctr", "loss_mask", "loss_id"}
    assert all(torch.isfinite(v) for v in losses.values())
    video = np.random.default_rng(1).integers(0, 255, size=(3, 40, 56, 3), dtype=np.uint8)
    stream = method.predict_video(video)
    assert [o.index for o in stream] == [0, 1, 2]
    assert stream.result().length == 3


def test_tracker_needing_embeddings_is_refused():
    with pytest.raises(InputError, match="embeddings"):
        _tiny_method("model.tracker=memory")


@pytest.mark.parametrize("name, backbone, dim, level", [("bench", "mobilenet_v2", 48, "c4"),
                                                        ("davis", "mobilenet_v2", 128, "c5"),
                                                        ("paper", "resnet50", 256, "c5")])
def test_configs_build_and_forward(name, backbone, dim, level):
    cfg = load_experiment(f"configs/iai_condinst_{name}.yaml",
                          ["model.model.condinst.pretrained=null"])
    assert cfg.method == "iai-condinst" and cfg.data.clip.num_frames == 5
    assert tuple(cfg.data.clip.gap_range) == (1, 3)
    assert cfg.train.optimizer == "adamw" and cfg.train.backbone_lr_mult == 0.1
    assert cfg.train.warmup_iters > 0
    torch.manual_seed(0)
    method = build_method(cfg.method, cfg.model)
    assert cfg.model.model.condinst.backbone == backbone and cfg.model.model.assoc_dim == dim
    assert cfg.model.model.assoc_level == level and method.iai.assoc_level == level
    assert method.iai.block is not None and method.cfg.tracker == "iai"
    losses = method(_one_object_batch(64, 96, (20, 10, 70, 50), label=0, ident=3))
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
