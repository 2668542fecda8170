"""Inference shortcuts that must not change results, each against the plain computation:

- ``FCOSHead`` merged towers (``fuse_for_inference``) vs the two separate towers;
- a tracker's ``input_filter``: feeding only the detections it lets through gives the same
  identities and the same video result as feeding every detection (the reference);
- ``CondInst.predict(keep=...)`` vs ``predict`` followed by the same selection.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tubelet.models.condinst.fcos import FCOSHead
from tubelet.models.condinst.model import CondInst
from tubelet.methods.track_by_detect import resize_for_test
from tubelet.structures import FrameInstances
from tubelet.trackers import build_tracker


def _random_head(num_convs, seed=0):
    torch.manual_seed(seed)
    h = FCOSHead(16, 3, (8, 16, 32), num_convs=num_convs, num_controller_params=11).eval()
    for m in h.modules():  # non-trivial GroupNorm affines and biases
        if isinstance(m, (nn.GroupNorm, nn.Conv2d)):
            m.weight.data.normal_(std=0.3)
            m.bias.data.normal_()
    return h


@pytest.mark.parametrize("num_convs", [1, 2, 3])
def test_merged_towers_match_separate_towers(num_convs):
    h = _random_head(num_convs)
    ref = copy.deepcopy(h)
    h.fuse_for_inference()
    feats = [torch.randn(2, 16, s, s + 3) for s in (12, 6, 3)]
    with torch.no_grad():
        a, b = ref(feats, with_controller=False), h(feats, with_controller=False)
    for key in ("cls", "box", "ctr", "features", "box_feats"):
        for x, y in zip(a[key], b[key]):
            assert x.shape == y.shape
            assert torch.allclose(x, y, atol=1e-4, rtol=1e-4), key


def test_merged_towers_only_at_inference():
    h = _random_head(2)
    h.fuse_for_inference()
    h.merged.pred.bias.data += 100.0  # if training used the merged stack, cls would jump by 100
    feats = [torch.randn(1, 16, 6, 6)]
    with torch.no_grad():
        h.train()
        train_cls = h(feats)["cls"][0]
        h.eval()
        eval_cls = h(feats)["cls"][0]
    assert (eval_cls - train_cls).abs().min() > 50


def _frames(seed, n_frames=12, size=(20, 24)):
    """Random frames of up to 6 box-shaped detections drifting over a small image."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 14, size=(6, 2))
    out = []
    for t in range(n_frames):
        n = int(rng.integers(0, 7))
        m = np.zeros((n,) + size, bool)
        for i in range(n):
            y, x = (base[i] + rng.normal(0, 1.0, 2) + 0.3 * t).clip(0, 14).astype(int)
            m[i, y:y + 5, x:x + 6] = True
        scores = rng.choice([0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9], size=n)  # ties at the gates
        labels = rng.integers(1, 3, size=n)
        probs = rng.dirichlet(np.ones(2), size=n)
        emb = rng.normal(size=(n, 4))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        out.append(FrameInstances(m, scores, labels, class_probs=probs, embeddings=emb))
    return out


def _run(tracker, frames, filtered):
    ids = []
    for f in frames:
        if filtered:
            keep = tracker.input_filter(f.scores)
            idx = np.nonzero(keep)[0]
            res = tracker.update(f[idx])
            full = np.full(len(f), -1)
            full[idx] = res.track_ids
            ids.append(full.tolist())
        else:
            ids.append(tracker.update(f).track_ids.tolist())
    v = tracker.finalize()
    return ids, v


@pytest.mark.parametrize("name,cfg", [
    ("greedy", {"score_thr": 0.3, "mean_score_thr": 0.1}), ("naive", {"score_thr": 0.2}),
    ("memory", {"score_thr": 0.3, "birth_thr": 0.4}), ("memory", {"score_thr": 0.95}),
    ("none", {"score_thr": 0.5})])
@pytest.mark.parametrize("seed", range(6))
def test_input_filter_does_not_change_tracking(name, cfg, seed):
    from tubelet.trackers.base import tracker_config_class
    frames = _frames(seed)
    conf = tracker_config_class(name)(**cfg)
    ids_all, v_all = _run(build_tracker(name, conf), frames, filtered=False)
    ids_f, v_f = _run(build_tracker(name, conf), frames, filtered=True)
    assert ids_f == ids_all
    assert v_f.track_ids.tolist() == v_all.track_ids.tolist()
    assert v_f.labels.tolist() == v_all.labels.tolist()
    assert np.allclose(v_f.scores, v_all.scores)
    assert v_f.masks == v_all.masks


def test_memory_filter_keeps_the_first_best_when_none_pass():
    tr = build_tracker("memory")
    assert tr.input_filter(np.array([0.05, 0.08, 0.08])).tolist() == [False, True, False]
    assert tr.input_filter(np.zeros(0)).tolist() == []


def test_default_filter_keeps_everything():
    tr = build_tracker("iai")
    assert tr.input_filter(np.array([0.0, 0.5])).tolist() == [True, True]


def test_condinst_predict_keep_is_selection_before_masks():
    torch.manual_seed(0)
    net = CondInst(num_classes=2, fpn_channels=16, num_convs=1, mask_branch_channels=8,
                   mask_branch_convs=1, score_thr=0.0, max_detections=20).eval()
    net.head.cls_logits.bias.data.fill_(0.0)  # many candidates above 0
    img = torch.randn(1, 3, 64, 96)
    full = net.predict(img)[0]
    thr = float(full.scores.median())
    part = net.predict(img, keep=lambda s: s >= thr)[0]
    sel = full.scores >= thr
    assert 0 < int(sel.sum()) < len(full.scores)
    assert torch.equal(part.scores, full.scores[sel])
    assert torch.equal(part.masks, full.masks[sel])
    assert torch.equal(part.boxes, full.boxes[sel])


def _paste_reference(logits, stride, size, threshold):
    """paste_masks' plain path: upsample every whole map, crop, threshold."""
    x = torch.sigmoid(logits.float())
    x = torch.nn.functional.interpolate(x, scale_factor=stride, mode="bilinear",
                                        align_corners=False)
    return x[:, 0, :size[0], :size[1]] > threshold


@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("seed", range(8))
def test_cropped_paste_equals_whole_map_paste(stride, seed):
    from tubelet.models.condinst.postprocess import paste_masks
    g = torch.Generator().manual_seed(seed)
    n, hm, wm = 6, 9, 13
    logits = torch.randn(n, 1, hm, wm, generator=g) * 4 - 3  # mostly negative, some blobs
    logits[0] = -10.0                                        # an empty mask
    logits[1, 0, 0, 0] = 5.0                                 # a positive pixel at a corner
    logits[2, 0, -1, -1] = 5.0                               # and at the far corner
    logits[3, 0, 4, 6] = 0.0                                 # exactly at the threshold
    size = (hm * stride - stride // 2, wm * stride - 3)      # valid area inside the padding
    for thr in (0.5, 0.3, 0.9):
        got = paste_masks(logits, stride, size, threshold=thr)
        assert torch.equal(got, _paste_reference(logits, stride, size, thr))


def test_pasted_masks_are_column_major_for_rle():
    from tubelet.models.condinst.postprocess import paste_masks
    from tubelet.structures.rle import encode, encode_many
    logits = torch.randn(3, 1, 5, 7, generator=torch.Generator().manual_seed(0))
    m = paste_masks(logits, 4, (20, 28)).numpy()
    assert m.transpose(1, 2, 0).flags.f_contiguous  # encode_many needs no copy
    assert encode_many(m) == [encode(np.ascontiguousarray(k)) for k in m]


def test_frame_rles_any_order_encoded_once():
    from tubelet.structures.rle import encode
    f = _frames(1)[0]
    while len(f) < 3:
        f = _frames(int(len(f)) + 7)[0]
    order = list(range(len(f)))[::-1]
    got = f.rles(order)
    assert got == [encode(f.masks[i]) for i in order]
    again = f.rles()
    assert all(again[i] is got[order.index(i)] for i in range(len(f)))  # cached, not re-encoded


@pytest.mark.parametrize("seed", range(6))
def test_contrastive_masks_no_resize_equal_whole_map(seed):
    # the reference: contrastive-online's whole-map rule (x4 bilinear, crop, sigmoid > thr)
    from tubelet.methods.contrastive_online.inference import masks_to_frame
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 8, 11, generator=g) * 5 - 2
    logits[0, 0, 0] = 0.0  # exactly at the threshold 0.5
    h, w = 8 * 4 - 2, 11 * 4 - 3
    ref = torch.nn.functional.interpolate(logits[:, None], size=(32, 44), mode="bilinear",
                                          align_corners=False)[:, 0, :h, :w].sigmoid() > 0.5
    got = masks_to_frame(logits, (h, w), (h, w), 0.5)
    assert torch.equal(got, ref)
    other = masks_to_frame(logits, (h, w), (2 * h, 2 * w), 0.5)  # the resize path is unchanged
    assert other.shape == (5, 2 * h, 2 * w)


def test_paste_refuses_other_strides():
    from tubelet.ops.paste import paste_thresholded
    with pytest.raises(ValueError, match="power of two"):
        paste_thresholded(torch.zeros(1, 2, 2), 3, 6, 6, 0.5, torch.zeros(1, 6, 6, dtype=torch.bool))


def test_contrastive_infer_is_forward_last_layer_and_frozen_matches():
    """``DeformableDETR.infer`` (last decoder layer only; traced and frozen per shape after
    ``fuse_for_inference``) against the plain ``forward``'s last layer."""
    from tubelet.engine.config import load_experiment
    from tubelet.methods import build_method
    cfg = load_experiment("configs/contrastive_online_tiny.yaml", [])
    torch.manual_seed(0)
    m = build_method(cfg.method, cfg.model).eval()
    m.cfg.score_thr = 0.0  # an untrained model: keep queries to compare
    x = torch.randn(1, 3, 64, 96)
    keys = ("pred_logits", "pred_boxes", "contrast_embeds", "mask_params", "mask_feats")
    with torch.no_grad():
        full = m.detector(x)
    lite = m.detector.infer(x)
    for k in keys:
        assert torch.equal(full[k], lite[k]), k  # the same operations: bit-equal
    assert lite["image_size"] == (64, 96)
    ref = copy.deepcopy(m)
    m.fuse_for_inference()
    assert m.detector.frozen_infer is not None
    frozen = m.detector.infer(x)
    assert len(m.detector.frozen_infer.graphs) == 1
    for k in keys:
        assert torch.allclose(full[k], frozen[k], atol=1e-4, rtol=1e-4), k
    frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    a, b = ref.detect_frame(frame), m.detect_frame(frame)
    assert len(a.scores) == len(b.scores) > 0
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=1e-3, atol=1e-4)
    assert (a.masks != b.masks).mean() < 1e-3  # threshold flips from rounding only


def test_normalize_frame_layout_bit_equal():
    # a decoded frame arrives as an H x W x 3 view; the row-wise normalisation must give exactly
    # (x - mean) / std per channel, in the frame's (channels-last) layout
    from tubelet.engine.config import load_experiment
    from tubelet.methods import build_method
    cfg = load_experiment("configs/condinst_track_tiny.yaml", [])
    m = build_method(cfg.method, cfg.model)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (7, 11, 3), dtype=np.uint8)
    img = torch.from_numpy(frame).permute(2, 0, 1)[None]  # [1, 3, 7, 11] view, NHWC memory
    got = m.normalize(img)
    mean = torch.tensor(cfg.model.pixel_mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(cfg.model.pixel_std).view(1, 3, 1, 1) * 255
    want = (img.contiguous().float() - mean) / std
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=torch.channels_last)
    batch = img.repeat(2, 1, 1, 1)  # a training batch (contiguous) takes the plain path
    assert torch.equal(m.normalize(batch), want.repeat(2, 1, 1, 1))
    # propose-reduce (not a track-by-detect method) normalises through the same function
    pr_cfg = load_experiment("configs/propose_reduce_tiny.yaml", [])
    pr = build_method(pr_cfg.method, pr_cfg.model)
    assert torch.equal(pr.normalize(img), want)
    # ... and preprocesses frames through the same function: equal to a plain resize + normalise
    for size in [(7, 11), (128, 200)]:  # kept as is / resized to the test size
        frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        plain = torch.from_numpy(frame).permute(2, 0, 1)[None].contiguous().float()
        for method, c in [(m, cfg.model), (pr, pr_cfg.model)]:
            h, w = resize_for_test(*size, c.test_short_side, c.test_max_size)
            ref = plain if (h, w) == size else F.interpolate(plain, size=(h, w), mode="bilinear",
                                                             align_corners=False)
            ref = (ref - mean) / std
            assert torch.allclose(method.preprocess(frame), ref, atol=1e-5, rtol=0)
