"""propose-reduce with its networks: key-frame rules with hand-made detections (mask NMS 0.2,
key-frame masks kept as they are, frames read by index in the propagation order), the training
pairs, and one forward of the paper and bench configs' models (random init)."""
import numpy as np
import pytest
import torch

from tubelet.engine.config import load_experiment
from tubelet.methods import build_method
from tubelet.models.seq_mask_rcnn import RCNNDetections
from tubelet.structures import decode
from tubelet.video import ArrayVideo

H, W, T = 64, 96, 6


class IndexOnlyVideo(ArrayVideo):
    """Records every ``video[t]``; iterating is refused (an offline method indexes)."""

    def __init__(self, frames):
        super().__init__(frames)
        self.reads: list[int] = []

    def __getitem__(self, t):
        self.reads.append(int(t))
        return super().__getitem__(t)

    def __iter__(self):
        raise AssertionError("propose-reduce must read frames by index")


def _box_mask(y0, y1, x0, x1):
    m = torch.zeros(H, W)
    m[y0:y1, x0:x1] = 1.0
    return m


# m0 and m1 overlap by 50 of 150 px (IoU 1/3 >= 0.2: m1 is dropped); m2 is disjoint
M0, M1, M2 = _box_mask(0, 10, 0, 10), _box_mask(0, 10, 5, 15), _box_mask(20, 30, 0, 10)


def _fake_detect(feats, mask_probs=False):
    assert mask_probs  # the key-frame masks are read as probabilities
    return [RCNNDetections(boxes=torch.tensor([[0., 0, 10, 10], [5, 0, 15, 10], [0, 20, 10, 30]]),
                           scores=torch.tensor([0.9, 0.8, 0.7]),
                           labels=torch.tensor([1, 1, 2]), masks=torch.stack([M0, M1, M2]))]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = load_experiment("configs/propose_reduce_tiny.yaml")
    model = build_method(cfg.method, cfg.model).eval()
    model.rcnn.detect = _fake_detect  # hand-made detections on every key frame
    return model


def _video():
    rng = np.random.default_rng(0)
    return IndexOnlyVideo(rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8))


def test_key_frames_nms_and_read_order(tiny):
    assert tiny.cfg.num_keys == 3  # tiny config: keys int(k 5 / 2) = 0, 2, 5
    video = _video()
    props = tiny.propose(video)
    # each key frame: itself, forward to the end, backward to the start
    assert video.reads == [0, 1, 2, 3, 4, 5,
                           2, 3, 4, 5, 1, 0,
                           5, 4, 3, 2, 1, 0]
    assert len(props) == 6  # 2 objects (m0, m2) survive the mask NMS on each of 3 key frames
    for first, t_key in zip((0, 2, 4), (0, 2, 5)):
        assert np.array_equal(decode(props.masks[first][t_key]), M0.numpy().astype(np.uint8))
        assert np.array_equal(decode(props.masks[first + 1][t_key]), M2.numpy().astype(np.uint8))
    # only RLEs (or None) are kept per frame; counts include the non-empty key frame
    assert all(m is None or isinstance(m, dict) for seq in props.masks for m in seq)
    assert all(len(seq) == T for seq in props.masks) and (props.count >= 1).all()
    np.testing.assert_allclose(props.class_scores().sum(1), 1.0, rtol=1e-6)


def test_one_key_frame_reads_forward_only(tiny):
    tiny.cfg.num_keys = 1
    try:
        video = _video()
        props = tiny.propose(video)
    finally:
        tiny.cfg.num_keys = 3
    assert video.reads == list(range(T)) and len(props) == 2


def test_predict_video_emits_every_frame_and_valid_records(tiny):
    stream = tiny.predict_video(_video())
    outs = list(stream)
    result = stream.result()
    assert [o.index for o in outs] == list(range(T))
    assert (result.length, result.height, result.width) == (T, H, W)
    assert len(result) > 0 and np.all(np.diff(result.scores) <= 0)  # descending score
    assert set(result.labels.tolist()) <= set(tiny.category_ids.tolist())
    assert result.scores.min() > 1e-3  # default output threshold with the aware step
    for o in outs:
        assert len(o.masks) == len(o.track_ids) == len(o.scores) == len(o.labels)


def _pair_batch(ids_ref, ids_cur, h=64, w=96):
    def target(ids):
        masks = torch.zeros(len(ids), h, w, dtype=torch.bool)
        for j, _ in enumerate(ids):
            masks[j, 8 + 16 * j: 20 + 16 * j, 10 + 20 * j: 30 + 20 * j] = True
        boxes = torch.tensor([[10. + 20 * j, 8 + 16 * j, 30 + 20 * j, 20 + 16 * j]
                              for j in range(len(ids))]).reshape(-1, 4)
        return {"masks": masks, "boxes": boxes, "labels": torch.zeros(len(ids), dtype=torch.long),
                "ids": torch.tensor(ids, dtype=torch.long)}
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 255, (1, 2, 3, h, w), generator=g, dtype=torch.uint8)
    return {"images": images, "targets": [[target(ids_ref), target(ids_cur)]],
            "image_sizes": [(h, w)]}


def test_training_pairs_objects_and_losses():
    torch.manual_seed(0)
    cfg = load_experiment("configs/propose_reduce_tiny.yaml", ["model.max_objects=2"])
    model = build_method(cfg.method, cfg.model).train()
    out = model(_pair_batch([0, 1, 2], [2, 1, 0]))
    assert set(out) == {"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box", "loss_mask",
                        "loss_prop", "prop_objects"}
    assert float(out["prop_objects"]) == 2  # 3 shared, capped at max_objects
    assert 0 < float(out["loss_prop"].detach()) <= 1 and all(torch.isfinite(v) for v in out.values())
    # no object in both frames: a zero prop loss that still gives every head parameter a grad
    model.zero_grad()
    out = model(_pair_batch([0], [1]))
    assert float(out["loss_prop"].detach()) == 0 and float(out["prop_objects"]) == 0
    sum(v for k, v in out.items() if k.startswith("loss")).backward()
    assert all(p.grad is not None for p in model.prop.parameters())


def test_training_cross_entropy_option():
    batch = _pair_batch([0, 1, 2], [2, 1, 0])
    torch.manual_seed(0)
    cfg = load_experiment("configs/propose_reduce_tiny.yaml", [])
    plain = build_method(cfg.method, cfg.model).train()(batch)
    torch.manual_seed(0)
    cfg = load_experiment("configs/propose_reduce_tiny.yaml", ["model.prop_ce_weight=0.5"])
    model = build_method(cfg.method, cfg.model).train()
    out = model(batch)
    assert "loss_prop_ce" not in plain and "loss_prop_ce" in out
    # same weights, same pair: the option adds a term and changes nothing else
    for k, v in plain.items():
        torch.testing.assert_close(out[k], v)
    # the term is 0.5 x the aggregated CE (3 objects, background elsewhere) of the head's logits
    assert 0 < float(out["loss_prop_ce"].detach()) < 0.5 * 5
    model.zero_grad()
    out["loss_prop_ce"].backward()
    assert model.prop.predict.weight.grad.abs().sum() > 0
    out = model(_pair_batch([0], [1]))  # no shared object: a zero with a graph
    assert float(out["loss_prop_ce"].detach()) == 0


@pytest.mark.parametrize("source", ["mask_head", "gt"])
def test_memory_masks_of_the_reference(source):
    torch.manual_seed(0)
    cfg = load_experiment("configs/propose_reduce_tiny.yaml",
                          ["model.max_objects=2", f"model.prop_memory={source}"])
    model = build_method(cfg.method, cfg.model).train()
    batch = _pair_batch([0, 1, 2], [2, 1, 0])
    seen = []
    encode = model.prop.encode_memory
    model.prop.encode_memory = lambda p2, masks: (seen.append(masks.detach().clone()),
                                                  encode(p2, masks))[1]
    model(batch)
    ref = batch["targets"][0][0]
    gt = ref["masks"][:2].float()  # the first two shared objects
    assert seen[0].shape == gt.shape
    if source == "gt":
        assert torch.equal(seen[0], gt)
    else:  # the mask head's probabilities on the GT boxes (random init: nothing like the GT)
        with torch.no_grad():
            feats = model.rcnn.extract(model.normalize(batch["images"][0]), [(64, 96)] * 2)
            want = model.rcnn.mask_probs_for_boxes(feats.frames(0), [ref["boxes"][:2]],
                                                   [ref["labels"][:2]])[0]
        torch.testing.assert_close(seen[0], want)
        assert not torch.equal(seen[0], gt)


@pytest.mark.parametrize("override,field", [("model.prop_memory=oracle", "prop_memory"),
                                            ("model.seq_prop.mem_stride=4", "mem_stride")])
def test_bad_head_options_are_refused_with_the_field_named(override, field):
    from tubelet.errors import InputError
    cfg = load_experiment("configs/propose_reduce_tiny.yaml", [override])
    with pytest.raises(InputError, match=field):
        build_method(cfg.method, cfg.model)


def test_three_frame_clips_propagate_through_the_growing_memory():
    torch.manual_seed(0)
    cfg = load_experiment("configs/propose_reduce_tiny.yaml", [])
    model = build_method(cfg.method, cfg.model).eval()
    pair = _pair_batch([0, 1], [1, 0])
    # frame 2 = frame 1 shifted 4 px right, object 1 gone
    img2 = torch.roll(pair["images"][:, 1], 4, dims=-1)
    t1 = pair["targets"][0][1]
    t2 = {"masks": torch.roll(t1["masks"][1:], 4, dims=-1), "boxes": t1["boxes"][1:] + 4.0,
          "labels": t1["labels"][1:], "ids": t1["ids"][1:]}
    images = torch.cat([pair["images"], img2[:, None]], 1)  # [1, 3, 3, H, W]
    tgts = pair["targets"][0] + [t2]
    size = pair["image_sizes"][0]
    with torch.no_grad():
        feats = model.rcnn.extract(model.normalize(images[0]), [size] * 3)
        two, _, n2 = model._prop_loss(feats, [0, 1], tgts[:2], size)
        three, _, n3 = model._prop_loss(feats, [0, 1, 2], tgts, size)
        skip, _, n_skip = model._prop_loss(feats, [0, 2], [tgts[0], tgts[2]], size)
    assert n2 == n3 == 2 and n_skip == 1  # ids 0, 1 in the reference; only id 0 in frame 2
    # the 3-frame loss is the mean of frame 1's (the pair's) and frame 2's, where frame 2 reads
    # the reference *and* frame 1's prediction: not the (0, 2) pair's value
    frame2 = 2 * float(three) - float(two)
    assert 0 <= frame2 <= 1
    assert abs(frame2 - float(skip)) > 1e-6
    # and the whole clip trains
    model.train()
    batch = {"images": images, "targets": [tgts], "image_sizes": [size]}
    out = model(batch)
    assert float(out["prop_objects"]) == 2 and torch.isfinite(out["loss_prop"])
    out["loss_prop"].backward()
    assert model.prop.memory_encoder.key.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("path", ["configs/propose_reduce_paper.yaml",
                                  "configs/propose_reduce_bench.yaml",
                                  "configs/propose_reduce_bench_prior.yaml",
                                  "configs/propose_reduce_davis.yaml"])
def test_preset_models_build_and_run_one_forward(path):
    torch.manual_seed(0)
    cfg = load_experiment(path, ["model.model.pretrained=null"])
    model = build_method(cfg.method, cfg.model).train()
    out = model(_pair_batch([0, 1], [1, 0]))
    assert all(torch.isfinite(v) for v in out.values()) and float(out["prop_objects"]) == 2
    assert cfg.data.clip.num_frames == 2


def test_one_frame_clips_are_refused_with_the_field_named():
    from tubelet.errors import InputError
    cfg = load_experiment("configs/propose_reduce_tiny.yaml", ["data.clip.num_frames=1"])
    model = build_method(cfg.method, cfg.model)
    with pytest.raises(InputError, match="num_frames"):
        model.train_dataset(None, "unused", cfg.data, seed=0)
