"""Tests of the simulated detector (tubelet.sim) and of bench/sim_reduce_track.py --quick.

Expected values are derived by hand from tiny hand-built ground truths (squares on a 32x48
frame), never from the code under test.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tubelet.sim import (DetectionNoise, Embedder, EmbeddingNoise, IdHeadNoise, MaskNoise,
                         ProposalNoise, SimFrame, SimulatedIdHead, close_encounters,
                         identity_switches, key_frames, perturb_mask, rng_for,
                         simulate_detections, simulate_proposals, touching)
from tubelet.ops import sequence_scores
from tubelet.structures import rle as rle_ops
from tubelet.structures.instances import VideoInstances
from tubelet.trackers.base import FrameResult

H, W, T = 32, 48, 4
CATS = list(range(1, 11))
PAIRS = [(1, 2), (3, 4), (5, 6)]
NO_MASK_NOISE = MaskNoise(shift_px=0.0, morph_px=0.0, flip_prob=0.0)


def square(y: int, x: int, s: int = 6) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y:y + s, x:x + s] = True
    return m


def video(labels=(1, 7), absent_last: bool = False) -> tuple[np.ndarray, list[int]]:
    """``[N, T, H, W]``: instance i is a 6x6 square at row 4 + 12 i, moving 2 px right a frame."""
    masks = np.zeros((len(labels), T, H, W), dtype=bool)
    for i in range(len(labels)):
        for t in range(T):
            masks[i, t] = square(4 + 12 * i, 4 + 2 * t)
    if absent_last:
        masks[0, T - 1] = False
    return masks, list(labels)


def clean_det(**kw) -> DetectionNoise:
    base = dict(miss_rate=0.0, fp_rate=0.0, dup_rate=0.0, confusion_rate=0.0, mask=NO_MASK_NOISE)
    base.update(kw)
    return DetectionNoise(**base)


def detect(cfg: DetectionNoise, seed: int = 0, masks=None, labels=None) -> list[SimFrame]:
    if masks is None:
        masks, labels = video()
    emb = Embedder(CATS, PAIRS, cfg.embedding, seed)
    return simulate_detections(masks, labels, CATS, PAIRS, cfg, emb, rng_for(seed, 2, 1))


# ---------------------------------------------------------------------------------- noise
def test_perturb_mask_seeded_and_identity_without_noise():
    m = square(10, 10, 8)
    a = perturb_mask(m, rng_for(3, 1), MaskNoise(), 2.0)
    b = perturb_mask(m, rng_for(3, 1), MaskNoise(), 2.0)
    assert np.array_equal(a, b)
    assert np.array_equal(perturb_mask(m, rng_for(3, 1), NO_MASK_NOISE, 5.0), m)
    assert not perturb_mask(np.zeros((H, W), bool), rng_for(0), MaskNoise()).any()


def test_perturb_mask_morphology_is_grow_or_shrink():
    m = square(10, 10, 10)
    grew = shrank = 0
    for seed in range(30):
        out = perturb_mask(m, rng_for(seed), MaskNoise(shift_px=0, morph_px=2.0, flip_prob=0), 1.0)
        assert (out | m).sum() == out.sum() or (out & m).sum() == out.sum()  # superset or subset
        grew += out.sum() > m.sum()
        shrank += out.sum() < m.sum()
    assert grew and shrank


def test_perturb_mask_shift_only_translates():
    m = square(10, 10, 6)
    out = perturb_mask(m, rng_for(5), MaskNoise(shift_px=3.0, morph_px=0, flip_prob=0), 1.0)
    ys, xs = np.nonzero(out)
    assert out.sum() == 36 and ys.max() - ys.min() == 5 and xs.max() - xs.min() == 5


def test_touching_by_hand():
    a = np.zeros((H, W), bool)
    a[5:10, 0:5] = True  # columns 0..4
    b = np.zeros((H, W), bool)
    b[5:10, 7:12] = True  # columns 7..11: two empty columns between
    both = np.stack([a, b, np.zeros((H, W), bool)])
    assert not touching(both, 2)[0, 1]  # dilating twice reaches column 6 only
    assert touching(both, 3)[0, 1] and touching(both, 3)[1, 0]
    assert not touching(both, 3)[0, 2] and not touching(both, 3).diagonal().any()


def test_embeddings_identity_closer_than_lookalike_closer_than_other():
    cfg = EmbeddingNoise()
    emb = Embedder(CATS, PAIRS, cfg, seed=0)
    rng = rng_for(0, 9)
    a, b, c = emb.identity(1, rng), emb.identity(1, rng), emb.identity(8, rng)
    obs = emb.observe(np.stack([a] * 20 + [b] * 20 + [c] * 20), rng)  # [60, D]
    assert np.allclose(np.linalg.norm(obs, axis=1), cfg.scale)
    same = (obs[:20] @ obs[:20].T)[np.triu_indices(20, 1)].mean()
    look = (obs[:20] @ obs[20:40].T).mean()
    other = (obs[:20] @ obs[40:].T).mean()
    assert same > look > other


# ---------------------------------------------------------------------------------- detections
def test_detections_seeded():
    f1, f2, f3 = (detect(DetectionNoise(), seed) for seed in (0, 0, 1))
    for a, b in zip(f1, f2):
        assert np.array_equal(a.instances.masks, b.instances.masks)
        assert np.array_equal(a.instances.scores, b.instances.scores)
        assert np.array_equal(a.instances.embeddings, b.instances.embeddings)
        assert np.array_equal(a.source, b.source)
    assert any(len(a) != len(c) or not np.array_equal(a.instances.scores, c.instances.scores)
               for a, c in zip(f1, f3))


def test_miss_rate_one_gives_no_detections():
    assert all(len(f) == 0 for f in detect(clean_det(miss_rate=1.0)))


def test_clean_detections_are_the_ground_truth():
    masks, labels = video(absent_last=True)
    frames = detect(clean_det(), masks=masks, labels=labels)
    assert [len(f) for f in frames] == [2, 2, 2, 1]  # instance 0 absent in the last frame
    for t, f in enumerate(frames):
        for i, g in enumerate(f.source):
            assert np.array_equal(f.instances.masks[i], masks[g, t])
            assert f.instances.labels[i] == labels[g]
            assert f.instances.class_probs[i].argmax() == CATS.index(labels[g])
            assert f.instances.class_probs[i].max() == pytest.approx(f.instances.scores[i])
        assert np.all(np.diff(f.instances.scores) <= 0)  # descending score


def test_confusion_only_swaps_to_the_partner():
    masks, labels = video(labels=(1, 7))  # 1 <-> 2 confusable; 7 has no partner
    frames = detect(clean_det(confusion_rate=1.0), masks=masks, labels=labels)
    for f in frames:
        for g, lab in zip(f.source, f.instances.labels):
            assert lab == {0: 2, 1: 7}[int(g)]


def test_duplicates_overlap_their_source():
    frames = detect(clean_det(dup_rate=1.0, dup_scale=1.0, mask=MaskNoise()))
    for f in frames:
        assert len(f) == 4 and f.duplicate.sum() == 2
        for g in (0, 1):
            pair = f.instances.masks[f.source == g]  # [2, H, W]: original and duplicate
            assert (pair[0] & pair[1]).any()


def test_false_positives_have_no_source():
    masks = np.zeros((0, T, H, W), dtype=bool)
    frames = detect(clean_det(fp_rate=3.0), masks=masks, labels=[])
    assert sum(len(f) for f in frames) > 0
    assert all((f.source == -1).all() for f in frames)


def test_id_head_new_then_slot_and_swap():
    masks, labels = video(labels=(1, 1))  # two look-alikes, 12 px apart (not touching at 3 px)
    frames = detect(clean_det(), masks=masks, labels=labels)
    head = SimulatedIdHead(IdHeadNoise(swap_near=0.0, swap_far=0.0), labels, PAIRS, rng_for(0, 3))
    k = head.cfg.num_ids
    p0 = head.probs(frames[0], masks[:, 0])
    assert (p0.argmax(1) == k - 1).all()  # first appearance: "new"
    ids = np.array([5, 9])[frames[0].source]  # the assigner gave instance 0 id 5, instance 1 id 9
    head.observe(frames[0], FrameResult(0, ids, np.ones(2, bool)))
    p1 = head.probs(frames[1], masks[:, 1])
    assert list(p1.argmax(1)) == [{0: 5, 1: 9}[int(g)] for g in frames[1].source]
    swap = SimulatedIdHead(IdHeadNoise(swap_near=0.0, swap_far=1.0), labels, PAIRS, rng_for(0, 3))
    swap.observe(frames[0], FrameResult(0, ids, np.ones(2, bool)))
    p2 = swap.probs(frames[1], masks[:, 1])
    assert list(p2.argmax(1)) == [{0: 9, 1: 5}[int(g)] for g in frames[1].source]


# ---------------------------------------------------------------------------------- proposals
def test_key_frames_by_hand():
    assert key_frames(10, 5) == [0, 2, 4, 6, 9]  # int(k * 9 / 4)
    assert key_frames(3, 5) == [0, 1, 2]
    assert key_frames(5, 2) == [0, 4]


def clean_props(**kw) -> ProposalNoise:
    base = dict(key_miss_rate=0.0, key_fp_rate=0.0, key_dup_rate=0.0, growth=0.0,
                miss_growth=0.0, drift_prob=0.0, drift_prob_other=0.0, confusion_rate=0.0,
                logit_noise=0.0, num_key_frames=2, mask=NO_MASK_NOISE)
    base.update(kw)
    return ProposalNoise(**base)


def test_clean_proposals_copy_the_ground_truth():
    masks, labels = video(labels=(1, 7))
    p = simulate_proposals(masks, labels, CATS, PAIRS, clean_props(), rng_for(0, 1, 1))
    assert len(p.masks) == 4 and sorted(p.key_frame.tolist()) == [0, 0, 3, 3]  # K=2 x 2 objects
    for seq, g in zip(p.masks, p.source):
        assert np.array_equal(rle_ops.decode_many(seq, H, W), masks[g])
    cate = sequence_scores(p.frame_probs, p.nonempty).category  # [P, C + 1]
    assert [CATS[c] for c in cate[:, 1:].argmax(1)] == [labels[g] for g in p.source]


def test_key_frame_misses_give_no_proposals():
    masks, labels = video()
    p = simulate_proposals(masks, labels, CATS, PAIRS, clean_props(key_miss_rate=1.0),
                           rng_for(0, 1, 1))
    assert len(p.masks) == 0 and p.frame_probs.shape == (0, T, len(CATS) + 1)


def test_proposals_seeded_and_confusion():
    masks, labels = video(labels=(3, 8))  # 3 <-> 4 confusable, 8 has no partner
    a = simulate_proposals(masks, labels, CATS, PAIRS, ProposalNoise(), rng_for(4, 1, 1))
    b = simulate_proposals(masks, labels, CATS, PAIRS, ProposalNoise(), rng_for(4, 1, 1))
    assert a.masks == b.masks and np.array_equal(a.frame_probs, b.frame_probs)
    p = simulate_proposals(masks, labels, CATS, PAIRS, clean_props(confusion_rate=1.0),
                           rng_for(0, 1, 1))
    cate = sequence_scores(p.frame_probs, p.nonempty).category
    assert [CATS[c] for c in cate[:, 1:].argmax(1)] == [{0: 4, 1: 8}[int(g)] for g in p.source]


def test_identity_drift_jumps_to_a_touching_lookalike():
    masks = np.zeros((2, 3, H, W), dtype=bool)
    masks[0, :] = square(4, 4)  # A: rows 4..9, columns 4..9, all frames
    masks[1, 0] = square(20, 30)  # B: far away at t = 0 ...
    masks[1, 1:] = square(4, 11)  # ... then columns 11..16: one empty column from A
    p = simulate_proposals(masks, [5, 5], CATS, PAIRS, clean_props(drift_prob=1.0),
                           rng_for(0, 1, 1))
    seq = next(s for s, g, tk in zip(p.masks, p.source, p.key_frame) if g == 0 and tk == 0)
    dense = rle_ops.decode_many(seq, H, W)
    assert np.array_equal(dense[0], masks[0, 0]) and np.array_equal(dense[1], masks[1, 1])


# ---------------------------------------------------------------------------------- metrics
def rles(*ms) -> list:
    return [None if m is None else rle_ops.encode(m) for m in ms]


def pred(tracks: list[list], ids: list[int]) -> VideoInstances:
    return VideoInstances(H, W, len(tracks[0]), [rles(*t) for t in tracks], [0.9] * len(ids),
                          [1] * len(ids), ids)


def test_identity_switches_by_hand():
    g = [square(4, 4 + 2 * t) for t in range(3)]
    gt = [rles(*g)]
    assert identity_switches(gt, pred([g], [7])).switches == 0
    split = identity_switches(gt, pred([[g[0], g[1], None], [None, None, g[2]]], [0, 1]))
    assert (split.switches, split.id_changes, split.matched_frames) == (1, 1, 3)
    aba = identity_switches(gt, pred([[g[0], None, g[2]], [None, g[1], None]], [0, 1]))
    assert (aba.switches, aba.id_changes) == (1, 2)
    # a 6x6 GT against a 6x4 prediction inside it: IoU 24 / 36 >= 0.5 (matched); 6x2: 12 / 36 not
    part = np.zeros((H, W), bool)
    part[4:10, 8:12] = True
    thin = np.zeros((H, W), bool)
    thin[4:10, 8:10] = True
    first_two = [g[0], g[1], None]
    assert identity_switches(gt, pred([first_two, [None, None, part]], [0, 1])).switches == 1
    low = identity_switches(gt, pred([first_two, [None, None, thin]], [0, 1]))
    assert (low.switches, low.matched_frames) == (0, 2)
    # two records of one track (one per class) are one track
    assert identity_switches(gt, pred([first_two, [None, None, g[2]]], [4, 4])).switches == 0
    # equal IoU: the lower record index wins, so the ids stay 3, 3, 3
    tie = identity_switches(gt, pred([g, [None, None, g[2]]], [3, 8]))
    assert tie.switches == 0 and tie.matched_ids == [[3, 3, 3]]


def test_swaps_versus_fragments_by_hand():
    a = [square(4, 4 + 2 * t) for t in range(3)]
    b = [square(20, 4 + 2 * t) for t in range(3)]
    gt = [rles(*a), rles(*b)]
    # tracks 0 and 1 exchange their objects at frame 2: two switch-instances, both swaps
    swapped = identity_switches(gt, pred([[a[0], a[1], b[2]], [b[0], b[1], a[2]]], [0, 1]))
    assert (swapped.switches, swapped.id_changes, swapped.swaps, swapped.swap_instances) == \
        (2, 2, 2, 2)
    # object a continues under a fresh track 5 at frame 2: a switch-instance, but no swap
    frag = identity_switches(gt, pred([[a[0], a[1], None], [b[0], b[1], b[2]],
                                       [None, None, a[2]]], [0, 1, 5]))
    assert (frag.switches, frag.id_changes, frag.swaps, frag.swap_instances) == (1, 1, 0, 0)
    # a: ids 0, 1 (track 1 had nobody before frame 1: a fragment); b: ids 0, 7, 1: 0 -> 7 is a
    # fragment, 7 -> 1 at frame 2 a swap (track 1 covered a at frame 1)
    late = identity_switches(gt, pred([[a[0], None, None], [None, a[1], b[2]],
                                       [None, b[1], None], [b[0], None, None]], [0, 1, 7, 0]))
    assert (late.switches, late.swaps, late.swap_instances) == (2, 1, 1)


def test_close_encounters_by_hand():
    masks = np.zeros((4, 2, H, W), dtype=bool)
    masks[0, :, 0:10, 0:10] = True
    masks[1, 1, 0:10, 5:15] = True  # frame 1: box IoU with 0 = 50 / 150 = 1/3
    masks[2, :, 0:10, 0:10] = True  # category 8: no partner of category 1
    masks[3, 0, 0:10, 8:18] = True  # category 2 (partner of 1): IoU 20 / 180 = 0.11 at frame 0
    labels = [1, 1, 8, 2]
    assert close_encounters(masks, labels, PAIRS, box_iou=0.3) == [(0, 1, 1)]
    # (1, 3) is never visible in the same frame; (0, 2) and (2, 3) are different categories
    assert close_encounters(masks, labels, PAIRS, box_iou=0.1) == [(0, 1, 1), (0, 3, 0)]
    assert close_encounters(masks, labels, (), box_iou=0.1) == [(0, 1, 1)]


# ---------------------------------------------------------------------------------- the script
def test_bench_quick_prints_valid_json():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "bench" / "sim_reduce_track.py"), "--quick",
                           "--videos", "2", "--crossing-videos", "1"], cwd=root,
                          capture_output=True, text=True, timeout=55)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert {"seed", "config", "noise_model", "reduction", "tracking", "speed", "claims"} <= set(out)
    assert {"none", "agnostic 0.5", "agnostic 0.9 + aware", "aware only"} <= \
        set(out["reduction"]["rows"])
    for row in out["reduction"]["rows"].values():
        assert 0 <= row["AP"] <= 1 and 0 <= row["AR10"] <= 1
    for part in ("bench", "crossing"):
        rows = out["tracking"][part]["rows"]
        assert len(rows) == 5
        for row in rows.values():
            assert 0 <= row["AP"] <= 1 and 0 <= row["switches"] <= row["gt_matched"]
    assert out["speed"]["trackers"]["greedy"]["update_ms"] > 0
    assert all(isinstance(c["holds"], bool) for c in out["claims"].values())
    assert out["noise_model"]["detections"]["miss_rate"] == DetectionNoise().miss_rate
    assert "| tracker |" in proc.stderr
