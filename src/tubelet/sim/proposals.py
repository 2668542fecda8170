"""Propose-Reduce sequence proposals, simulated from the ground truth.

Shapes: P proposals, N GT instances, T frames, H x W, C classes (C + 1 with background col 0).

Noise model of one video (all draws from the video's seeded generator, key frame by key frame):

1. **Key frames** ``t_k = int(k (T - 1) / (K - 1))``, k = 0..K-1 (every frame when T < K), as
   the released code.
2. **Key-frame detections**: each GT instance visible there (>= ``min_area`` px) is detected
   unless missed (``key_miss_rate``), with a scale-1 noisy mask and a score
   ``clip(N(tp_score_mean, tp_score_std), 0.05, 0.99)``; with ``key_dup_rate`` also a sloppier
   duplicate (scale ``dup_scale``); plus ``Poisson(key_fp_rate)`` false-positive blobs with score
   ``U(fp_score)``. Then, as the released code: score > ``key_score_thr``, greedy mask NMS at
   ``key_nms_iou`` (:func:`tubelet.ops.mask_nms`), the top ``per_key_frame`` (O).
3. **Propagation** of each kept detection forward to T - 1 and backward to 0. At distance
   ``δ = |t - t_k|`` the mask is the GT mask of the object currently followed, degraded at scale
   ``1 + growth δ`` (:func:`~tubelet.sim.noise.perturb_mask`), or empty with probability
   ``min(max_miss, miss_growth δ)``, or empty while the object is invisible. **Identity drift**:
   stepping away from the key frame, when the followed object's GT mask touches (within
   ``drift_touch_px``) another visible object's, the propagation jumps to that object for the
   rest of this direction with probability ``drift_prob`` (same or confusable category) or
   ``drift_prob_other`` (any other category). A false-positive proposal keeps its blob, degraded
   the same way.
4. **Per-frame class distributions** ``[C + 1]`` (the box head on the propagated mask):
   ``softmax`` of logits ``fg_logit`` at the class of the object under the mask, ``fg_logit -
   partner_gap`` at its confusable partner, 0 at other classes, ``bg_logit + bg_growth δ`` at the
   background, plus ``N(0, logit_noise)`` on every entry. Each proposal is "confused" with
   probability ``confusion_rate`` (drawn once per proposal, so the proposals of one object from
   different key frames disagree): its true and partner logits swap. A false-positive proposal has
   logit ``fp_fg_logit`` at a random class and ``fp_bg_logit`` at the background.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from tubelet.ops.key_frames import key_frames
from tubelet.ops.seq_nms import mask_nms
from tubelet.sim.noise import MaskNoise, partner_map, perturb_mask, random_blob, touching
from tubelet.structures import rle as rle_ops


@dataclass
class ProposalNoise:
    """Proposal simulation knobs (module docstring)."""
    num_key_frames: int = 5  # K
    per_key_frame: int = 10  # O: detections kept per key frame
    key_score_thr: float = 0.2  # key-frame detections need a score > this
    key_nms_iou: float = 0.2  # greedy mask NMS of the key-frame masks (released code)
    key_miss_rate: float = 0.1  # P(a visible GT instance is missed in a key frame)
    key_fp_rate: float = 1.0  # mean false positives per key frame (Poisson)
    key_dup_rate: float = 0.3  # P(a detected instance gets a duplicate in a key frame)
    dup_scale: float = 3.0  # mask degradation scale of a duplicate
    min_area: int = 20  # GT masks with fewer pixels are never detected in a key frame
    tp_score_mean: float = 0.8  # key-frame detection score ~ clip(N(mean, std), 0.05, 0.99)
    tp_score_std: float = 0.1
    fp_score: tuple[float, float] = (0.1, 0.6)  # false-positive key-frame score ~ U(lo, hi)
    growth: float = 0.15  # mask degradation scale = 1 + growth * |t - t_k|
    miss_growth: float = 0.01  # P(empty propagated frame) = min(max_miss, miss_growth * δ)
    max_miss: float = 0.5
    drift_prob: float = 0.3  # P(jump to a touching same/confusable-category object) per frame
    drift_prob_other: float = 0.05  # P(jump to a touching object of another category)
    drift_touch_px: int = 2  # "touching": GT masks within this many pixels
    fg_logit: float = 4.0  # class logit of the object under the mask
    partner_gap: float = 2.0  # its confusable partner's logit is fg_logit - partner_gap
    confusion_rate: float = 0.2  # P(a proposal's true and partner logits swap)
    bg_logit: float = 1.0  # background logit at the key frame ...
    bg_growth: float = 0.1  # ... + bg_growth * |t - t_k|
    logit_noise: float = 1.0  # N(0, this) on every logit of every frame
    fp_fg_logit: float = 1.5  # a false-positive proposal: logit of its random class
    fp_bg_logit: float = 3.0  # ... and of the background
    mask: MaskNoise = field(default_factory=MaskNoise)  # mask degradation at scale 1


class Proposals(NamedTuple):
    masks: list[list[dict | None]]  # P sequences x T frames, compressed RLE or None
    frame_probs: np.ndarray  # [P, T, C + 1] per-frame class distributions (col 0 = background)
    nonempty: np.ndarray  # [P, T] bool
    key_frame: np.ndarray  # [P] int, t_k of each proposal
    source: np.ndarray  # [P] int GT index detected in the key frame, -1 for a false positive


def _key_detections(gt_t: np.ndarray, areas_t: np.ndarray, cfg: ProposalNoise,
                    rng: np.random.Generator) -> tuple[list[np.ndarray], list[float], list[int]]:
    """Masks ``[H, W]``, scores and sources (GT index or -1) kept in one key frame."""
    n_gt, h, w = gt_t.shape
    masks, scores, src = [], [], []
    for g in range(n_gt):
        if areas_t[g] < cfg.min_area or rng.random() < cfg.key_miss_rate:
            continue
        score = float(np.clip(rng.normal(cfg.tp_score_mean, cfg.tp_score_std), 0.05, 0.99))
        masks.append(perturb_mask(gt_t[g], rng, cfg.mask, 1.0)), scores.append(score)
        src.append(g)
        if rng.random() < cfg.key_dup_rate:
            masks.append(perturb_mask(gt_t[g], rng, cfg.mask, cfg.dup_scale))
            scores.append(score * float(rng.uniform(0.5, 0.95))), src.append(g)
    for _ in range(int(rng.poisson(cfg.key_fp_rate))):
        masks.append(random_blob(h, w, rng)), scores.append(float(rng.uniform(*cfg.fp_score)))
        src.append(-1)
    keep = [i for i in range(len(masks)) if scores[i] > cfg.key_score_thr and masks[i].any()]
    if not keep:
        return [], [], []
    order = mask_nms(np.array([scores[i] for i in keep]), np.stack([masks[i] for i in keep]),
                     iou_threshold=cfg.key_nms_iou)[:cfg.per_key_frame]
    kept = [keep[i] for i in order]
    return [masks[i] for i in kept], [scores[i] for i in kept], [src[i] for i in kept]


def simulate_proposals(gt_masks: np.ndarray, gt_labels: Sequence[int],
                       category_ids: Sequence[int], pairs: Sequence[tuple[int, int]],
                       cfg: ProposalNoise, rng: np.random.Generator) -> Proposals:
    """Simulate the K x O sequence proposals of one video (module docstring).

    Args:
        gt_masks: ``[N, T, H, W]`` bool GT masks (all-False where absent).
        gt_labels: ``[N]`` GT category ids.
        category_ids: the C category ids: class column c + 1 of ``frame_probs`` is
            ``category_ids[c]``.
        pairs: confusable category pairs.
        rng: the video's generator.
    """
    gt_masks = np.asarray(gt_masks, dtype=bool)
    n_gt, length, h, w = gt_masks.shape
    cats = [int(c) for c in category_ids]
    col = {c: i + 1 for i, c in enumerate(cats)}  # category id -> column of [C + 1]
    partner = {a: b for a, b in partner_map(pairs).items() if a in col and b in col}
    labels = [int(x) for x in gt_labels]
    lookalike = np.array([[labels[j] == labels[i] or partner.get(labels[i]) == labels[j]
                           for j in range(n_gt)] for i in range(n_gt)], dtype=bool)
    areas = gt_masks.reshape(n_gt, length, h * w).sum(-1)  # [N, T]
    touch = [touching(gt_masks[:, t], cfg.drift_touch_px) for t in range(length)]  # T x [N, N]
    seqs, probs, nonempty, keys, sources = [], [], [], [], []
    for tk in key_frames(length, cfg.num_key_frames):
        for m0, _, g0 in zip(*_key_detections(gt_masks[:, tk], areas[:, tk], cfg, rng)):
            follow = np.full(length, -1, dtype=np.int64)  # [T] GT followed per frame
            frames = [np.zeros((h, w), dtype=bool) for _ in range(length)]
            frames[tk] = m0
            follow[tk] = g0
            for direction in (1, -1):
                cur = g0
                for t in range(tk + direction, length if direction > 0 else -1, direction):
                    delta = abs(t - tk)
                    if cur >= 0 and areas[cur, t] > 0:
                        for hh in np.nonzero(touch[t][cur])[0]:
                            p = cfg.drift_prob if lookalike[cur, hh] else cfg.drift_prob_other
                            if rng.random() < p:
                                cur = int(hh)
                                break
                    follow[t] = cur
                    if rng.random() < min(cfg.max_miss, cfg.miss_growth * delta):
                        continue
                    src_mask = m0 if cur < 0 else gt_masks[cur, t]
                    frames[t] = perturb_mask(src_mask, rng, cfg.mask, 1.0 + cfg.growth * delta)
            stack = np.stack(frames)  # [T, H, W]
            ne = stack.reshape(length, -1).any(1)  # [T]
            rles = rle_ops.encode_many(stack)
            seqs.append([r if e else None for r, e in zip(rles, ne)])
            nonempty.append(ne)
            probs.append(_frame_probs(follow, tk, g0, labels, col, partner, cfg, rng))
            keys.append(tk)
            sources.append(g0)
    c1 = len(cats) + 1
    return Proposals(seqs, np.stack(probs) if probs else np.zeros((0, length, c1)),
                     np.stack(nonempty) if nonempty else np.zeros((0, length), dtype=bool),
                     np.asarray(keys, dtype=np.int64), np.asarray(sources, dtype=np.int64))


def _frame_probs(follow: np.ndarray, tk: int, g0: int, labels: list[int], col: dict[int, int],
                 partner: dict[int, int], cfg: ProposalNoise,
                 rng: np.random.Generator) -> np.ndarray:
    """``[T, C + 1]`` class distributions of one proposal following ``follow [T]`` GT indices."""
    length, c1 = len(follow), len(col) + 1
    confused = rng.random() < cfg.confusion_rate
    fp_col = int(rng.integers(1, c1))
    delta = np.abs(np.arange(length) - tk)  # [T]
    logits = rng.normal(0.0, cfg.logit_noise, size=(length, c1))  # [T, C + 1]
    for t in range(length):
        g = int(follow[t])
        if g0 < 0 or g < 0:  # a false-positive proposal
            logits[t, fp_col] += cfg.fp_fg_logit
            logits[t, 0] += cfg.fp_bg_logit + cfg.bg_growth * delta[t]
            continue
        true_col = col[labels[g]]
        part_col = col[partner[labels[g]]] if labels[g] in partner else None
        if confused and part_col is not None:
            true_col, part_col = part_col, true_col
        logits[t, true_col] += cfg.fg_logit
        if part_col is not None:
            logits[t, part_col] += cfg.fg_logit - cfg.partner_gap
        logits[t, 0] += cfg.bg_logit + cfg.bg_growth * delta[t]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


__all__ = ["ProposalNoise", "Proposals", "key_frames", "simulate_proposals"]
