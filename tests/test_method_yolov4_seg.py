"""``yolov4-seg`` method: letterbox in/out, k-means anchor hook, training frames, tracker rules,
and one forward of the bench and paper configs (expected numbers derived by hand in comments)."""
import numpy as np
import pytest
import torch
from PIL import Image

from tubelet.data.ytvis import Annotation, Video, YTVISDataset
from tubelet.engine.config import load_experiment
from tubelet.engine.optim import param_groups
from tubelet.methods import build_method
from tubelet.methods.yolov4_seg import YOLOAugConfig, YOLOv4SegMethodConfig
from tubelet.methods.yolov4_seg.data import (PAD_VALUE, LetterboxFrameDataset, colour_jitter,
                                             training_box_sizes)
from tubelet.models.yolov4 import YOLOv4SegConfig, level_anchors
from tubelet.structures import FrameInstances
from tubelet.structures.rle import encode

torch.set_num_threads(1)


def tiny_cfg(**kw) -> YOLOv4SegMethodConfig:
    det = YOLOv4SegConfig.cpu(num_classes=3, input_size=64, width=0.125, neck_channels=(8, 16, 32, 64),
                              neck_block_convs=1, embed_channels=8, pool_size=4, mask_convs=1,
                              anchors_per_level=1)
    return YOLOv4SegMethodConfig(model=det, **kw)


def rect_mask(h, w, x1, y1, x2, y2):
    m = np.zeros((h, w), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


# ------------------------------------------------------------------------------ letterbox in/out
def test_preprocess_letterboxes_with_grey_padding():
    m = build_method("yolov4-seg", tiny_cfg()).eval()
    frame = np.full((32, 64, 3), 200, dtype=np.uint8)  # 32 x 64 -> scale 1, pad 16 rows top/bottom
    x = m.preprocess(frame)
    assert x.shape == (1, 3, 64, 64)
    grey = m.normalize(torch.full((1, 3, 1, 1), float(PAD_VALUE)))[0, :, 0, 0]
    white = m.normalize(torch.full((1, 3, 1, 1), 200.0))[0, :, 0, 0]
    assert torch.allclose(x[0, :, :16].mean((1, 2)), grey) and torch.allclose(x[0, :, 48:].mean((1, 2)), grey)
    assert torch.allclose(x[0, :, 16:48], white[:, None, None].expand(3, 32, 64))
    rect = build_method("yolov4-seg", tiny_cfg(test_rect=True)).eval()
    assert rect.preprocess(frame).shape == (1, 3, 32, 64)  # ceil(32 / 32) * 32 rows, no padding


def test_rect_letterbox_keeps_the_square_scale():
    m = build_method("yolov4-seg", tiny_cfg(test_rect=True))
    m.cfg.model.input_size = 256
    lb = m.letterbox_of((192, 320))
    # square: r = 256 / 320 = 0.8 -> 153.6 -> 154 x 256; rect: 154 -> 160 rows, pad (160-154)//2 = 3
    assert lb.out_size == (160, 256) and lb.new_size == (154, 256) and lb.pad == (3, 0)
    m.cfg.test_rect = False
    assert m.letterbox_of((192, 320)).out_size == (256, 256)


def test_detect_returns_masks_in_the_frame():
    cfg = tiny_cfg()
    cfg.model.conf_thr = 0.0  # every anchor is a proposal: N = max_proposals
    cfg.model.max_proposals = 3
    m = build_method("yolov4-seg", cfg).eval()
    frame = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    inst = m.detect_frame(frame)
    assert inst.masks.shape == (3, 30, 50) and inst.boxes.shape == (3, 4)
    assert (inst.boxes[:, 0::2] <= 50).all() and (inst.boxes[:, 1::2] <= 30).all()
    assert set(inst.labels.tolist()) <= {1, 2, 3}  # dataset category ids, not 0-based indices
    assert np.all(np.diff(inst.scores) <= 0)  # proposals sorted by confidence


# ------------------------------------------------------------------------------- anchors hook
def _gt(with_bboxes=True):
    """One 100 x 200 video of 2 frames; boxes (w, h) 25x50, 50x50, 100x50, 150x75 (x2 frames)."""
    sizes = [(25, 50), (50, 50), (100, 50), (150, 75)]
    anns = []
    for i, (w, h) in enumerate(sizes):
        segs = [encode(rect_mask(100, 200, 10, 5, 10 + w, 5 + h)) for _ in range(2)]
        bbs = [[10, 5, w, h]] * 2 if (with_bboxes and i) else None  # the first: from its mask
        anns.append(Annotation(i + 1, 1, 1, segs, [w * h] * 2, bboxes=bbs))
    return YTVISDataset({1: Video(1, 200, 100, 2, ["v/0.png", "v/1.png"], "v")}, {1: "a"}, anns)


def test_training_box_sizes_are_letterboxed():
    # letterbox 100 x 200 -> 64: scale 0.32 on both axes
    want = torch.tensor([[8, 16], [16, 16], [32, 16], [48, 24]], dtype=torch.float32)
    got = training_box_sizes(_gt(), 64)
    assert torch.allclose(got, want.repeat_interleave(2, 0))


def test_kmeans_anchors_written_when_training_starts(tmp_path):
    m = build_method("yolov4-seg", tiny_cfg())
    before = m.detector.anchors.clone()
    from tubelet.engine.config import DataConfig
    m.train_dataset(_gt(), str(tmp_path), DataConfig(), seed=0)
    # 4 distinct sizes, 4 anchors (1 per level): k-means++ never re-picks a chosen size (distance
    # 0), so the centres are exactly the 4 sizes, one per level by increasing area
    want = torch.tensor([[[8, 16]], [[16, 16]], [[32, 16]], [[48, 24]]], dtype=torch.float32)
    assert torch.allclose(m.detector.anchors, want) and not torch.equal(before, want)
    assert torch.equal(m.state_dict()["detector.anchors"], m.detector.anchors)  # saved with weights
    other = build_method("yolov4-seg", tiny_cfg())
    other.load_state_dict(m.state_dict())
    assert torch.equal(other.detector.anchors, want)


def test_kmeans_anchors_deterministic_and_skipped_when_given(tmp_path):
    from tubelet.engine.config import DataConfig
    cfg = tiny_cfg()
    cfg.model.anchors_per_level = 2  # 8 anchors from 8 boxes of 4 sizes: duplicates are drawn
    a = build_method("yolov4-seg", cfg)
    b = build_method("yolov4-seg", cfg)
    a.train_dataset(_gt(), str(tmp_path), DataConfig(), seed=3)
    b.train_dataset(_gt(), str(tmp_path), DataConfig(), seed=3)
    ref = level_anchors(training_box_sizes(_gt(), 64), 2, 4, seed=3)
    assert torch.equal(a.detector.anchors, b.detector.anchors) and torch.equal(a.detector.anchors, ref)
    fixed = tiny_cfg()
    fixed.model.anchors = ((4, 4),), ((8, 8),), ((16, 16),), ((32, 32),)
    c = build_method("yolov4-seg", fixed)
    c.train_dataset(_gt(), str(tmp_path), DataConfig(), seed=0)
    assert c.detector.anchors[:, 0, 0].tolist() == [4, 8, 16, 32]


def test_balance_weights_have_no_weight_decay():
    m = build_method("yolov4-seg", tiny_cfg())
    groups = param_groups(m, 1e-3, 5e-4, {})
    lv = m.detector.balance.log_vars
    assert [g["weight_decay"] for g in groups if any(p is lv for p in g["params"])] == [0.0]


# ---------------------------------------------------------------------------- training frames
def test_training_frame_letterboxed_with_box_and_mask(tmp_path):
    (tmp_path / "v").mkdir()
    img = np.zeros((40, 80, 3), dtype=np.uint8)
    img[5:15, 10:30] = (250, 10, 10)
    Image.fromarray(img).save(tmp_path / "v" / "0.png")
    mask = rect_mask(40, 80, 10, 5, 30, 15)
    gt = YTVISDataset({1: Video(1, 80, 40, 1, ["v/0.png"], "v")}, {7: "a"},
                      [Annotation(1, 1, 7, [encode(mask)], [200.0])])
    aug = YOLOAugConfig(hflip_prob=0, brightness=0, contrast=0, saturation=0)
    ds = LetterboxFrameDataset(gt, str(tmp_path), 64, aug, samples_per_video=1, seed=0)
    s = ds[0]
    assert s["images"].shape == (1, 3, 64, 64) and s["images"].dtype == torch.uint8
    # 40 x 80 -> x 0.8 = 32 x 64, 16 grey rows above and below; the box (10, 5, 30, 15) -> x 0.8
    # = (8, 4, 24, 12) (bilinear mask resize >= 0.5 lands on these edges), + 16 rows
    assert (s["images"][0, :, :16] == PAD_VALUE).all() and (s["images"][0, :, 48:] == PAD_VALUE).all()
    tg = s["targets"][0]
    assert tg["boxes"].tolist() == [[8.0, 20.0, 24.0, 28.0]] and tg["labels"].tolist() == [0]
    assert torch.equal(tg["masks"][0], torch.from_numpy(rect_mask(64, 64, 8, 20, 24, 28)))
    assert torch.equal(ds[0]["images"], s["images"])  # a pure function of (seed, epoch, index)


class _FixedRng:
    def __init__(self, value):
        self.value = value

    def uniform(self, lo, hi):
        return self.value


def test_colour_jitter_hand_values():
    px = torch.tensor([100, 50, 0], dtype=torch.uint8).view(3, 1, 1)
    bright = colour_jitter(px, YOLOAugConfig(brightness=0.5, contrast=0, saturation=0), _FixedRng(1.5))
    assert bright.flatten().tolist() == [150, 75, 0]
    # saturation factor 0 -> the luma 0.299 * 100 + 0.587 * 50 = 59.25 -> 59 on every channel
    grey = colour_jitter(px, YOLOAugConfig(brightness=0, contrast=0, saturation=1.0), _FixedRng(0.0))
    assert grey.flatten().tolist() == [59, 59, 59]


# -------------------------------------------------------------------------- tracker rules (paper)
def _stub_video(m, frames):
    """Predict on len(frames) black 8 x 8 frames, with detect() replaced by the hand-made list."""
    it = iter(frames)
    m.detect = lambda images, size: next(it)
    stream = m.predict_video(np.zeros((len(frames), 8, 8, 3), dtype=np.uint8))
    return list(stream), stream.result()


def _det(items):
    """items: (x1, score, label) -> FrameInstances of 2 x 2 squares at column x1 of an 8 x 8 frame."""
    masks = np.stack([rect_mask(8, 8, x, 2, x + 2, 4) for x, _, _ in items]) if items else \
        np.zeros((0, 8, 8), dtype=bool)
    return FrameInstances(masks, [s for _, s, _ in items], [c for _, _, c in items])


def test_greedy_gates_and_output_filter():
    m = build_method("yolov4-seg", tiny_cfg())  # paper gates: enter >= 0.6, > 3 frames, mean > 0.6
    frames = [_det([(0, 0.9, 1), (5, 0.7, 2)]), _det([(0, 0.8, 1), (5, 0.7, 2)]),
              _det([(0, 0.59, 1), (5, 0.7, 2)]),  # 0.59 < 0.6: never reaches the tracker
              _det([(0, 0.7, 1), (5, 0.61, 2)]), _det([(0, 0.7, 3)])]  # class change: new track
    outs, res = _stub_video(m, frames)
    assert [o.index for o in outs] == [0, 1, 2, 3, 4]
    assert [o.track_ids.tolist() for o in outs] == [[0, 1], [0, 1], [1], [0, 1], [2]]
    assert np.allclose(outs[2].scores, [0.7])
    # track 0: 3 valid frames (not > 3) -> dropped; track 1: 4 frames, mean 0.6775 > 0.6 -> kept;
    # track 2: 1 frame -> dropped
    assert res.track_ids.tolist() == [1] and res.labels.tolist() == [2]
    assert res.scores[0] == pytest.approx((0.7 * 3 + 0.61) / 4)
    assert [r is None for r in res.masks[0]] == [False, False, False, False, True]
    assert res.length == 5


def test_class_term_off_and_naive_tracker():
    cfg = tiny_cfg()
    cfg.greedy.class_weight = 0.0  # the released code: mask IoU only -> the class change continues
    frames = [_det([(0, 0.9, 1)]) for _ in range(3)] + [_det([(0, 0.9, 3)]), _det([(0, 0.9, 3)])]
    outs, res = _stub_video(build_method("yolov4-seg", cfg), frames)
    assert [o.track_ids.tolist() for o in outs] == [[0]] * 5
    # one track, 5 frames, votes 1,1,1,3,3 -> majority category 1
    assert res.labels.tolist() == [1] and res.scores[0] == pytest.approx(0.9)
    naive = build_method("yolov4-seg", tiny_cfg(tracker="naive"))
    outs, res = _stub_video(naive, [_det([(0, 0.9, 1), (5, 0.5, 1)]) for _ in range(4)])
    assert [o.track_ids.tolist() for o in outs] == [[0]] * 4 and len(res) == 1


# ---------------------------------------------------------------------- bench and paper configs
@pytest.mark.parametrize("name,size", [("bench", 64), ("bench_imagenet", 64), ("paper", 64)])
def test_config_builds_and_runs_one_forward(name, size):
    # the ImageNet weights themselves are not needed for shapes (and may not be installed)
    cfg = load_experiment(f"configs/yolov4_seg_{name}.yaml", [f"model.model.input_size={size}",
                                                              "model.model.pretrained=null"])
    m = build_method(cfg.method, cfg.model).train()
    torch.manual_seed(0)
    images = torch.randint(0, 255, (1, 1, 3, size, size), dtype=torch.uint8)
    mask = torch.from_numpy(rect_mask(size, size, 8, 8, 40, 32))
    tg = {"masks": mask[None], "boxes": torch.tensor([[8.0, 8.0, 40.0, 32.0]]),
          "labels": torch.tensor([1])}
    out = m({"images": images, "targets": [[tg]]})
    assert {"loss_box", "loss_conf", "loss_cls", "loss_mask"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())
