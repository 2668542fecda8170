"""Per-frame detections a real segmenter would emit, simulated from the ground truth.

Noise model of one frame t (every draw from the video's seeded generator, in a fixed order:
GT instances in index order, then the false positives):

- **Misses.** A GT instance whose visible mask has fewer than ``min_area`` pixels is never
  detected; otherwise it is missed with probability ``miss_rate`` (independently per frame).
- **Masks.** A detected instance's mask is :func:`~tubelet.sim.noise.perturb_mask` of its GT mask
  at scale 1 (boundary jitter, erosion / dilation, shift).
- **Scores.** ``clip(N(tp_score_mean, tp_score_std), 0.05, 0.99)``.
- **Class confusion.** With probability ``confusion_rate`` the predicted label of an instance of a
  category with a confusable partner is that partner (never any other category).
  ``class_probs [C]`` are per-class (sigmoid-style) probabilities: ``score`` at the predicted
  label, ``score * U(0, partner_prob)`` at the label's partner, ``U(0, other_prob)`` elsewhere;
  so ``score = max(class_probs)`` and ``label = argmax``.
- **Duplicates.** With probability ``dup_rate`` a detected instance gets a second, sloppier mask
  (scale ``dup_scale``; it overlaps the first) with the same label and score ``score *
  U(dup_score)``.
- **False positives.** ``Poisson(fp_rate)`` per frame: :func:`~tubelet.sim.noise.random_blob`
  masks of a uniformly drawn category, score ``U(fp_score)``, embedded as a fresh identity of that
  category.
- **Embeddings.** Each GT instance gets one identity vector per video; every detection of it
  (duplicates included) observes it with fresh noise (:class:`~tubelet.sim.noise.Embedder`).

Detections are emitted in descending score order, as a detector's top-k output.

The IAI identity head is simulated online by :class:`SimulatedIdHead`, because what it predicts
depends on the IDs the assigner handed out before (they are what its memory holds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tubelet.sim.noise import (Embedder, EmbeddingNoise, MaskNoise, partner_map, perturb_mask,
                               random_blob, touching)
from tubelet.structures.instances import FrameInstances
from tubelet.trackers.base import FrameResult


@dataclass
class DetectionNoise:
    """Per-frame detection noise (module docstring)."""
    miss_rate: float = 0.1  # P(a visible GT instance is not detected in a frame)
    min_area: int = 20  # GT masks with fewer pixels are always missed
    fp_rate: float = 0.5  # mean number of false positives per frame (Poisson)
    fp_score: tuple[float, float] = (0.1, 0.7)  # false-positive score ~ U(lo, hi)
    dup_rate: float = 0.1  # P(a detected instance also gets a duplicate detection)
    dup_scale: float = 3.0  # mask degradation scale of a duplicate
    dup_score: tuple[float, float] = (0.5, 0.95)  # duplicate score = source score * U(lo, hi)
    confusion_rate: float = 0.15  # P(label -> confusable partner), categories with a partner only
    tp_score_mean: float = 0.8  # true-positive score ~ clip(N(mean, std), 0.05, 0.99)
    tp_score_std: float = 0.1
    partner_prob: float = 0.5  # class_probs at the label's partner = score * U(0, this)
    other_prob: float = 0.02  # class_probs at any other category ~ U(0, this)
    mask: MaskNoise = field(default_factory=MaskNoise)  # mask degradation at scale 1
    embedding: EmbeddingNoise = field(default_factory=EmbeddingNoise)  # appearance embeddings


@dataclass
class SimFrame:
    """One simulated frame: the detections and where each came from.

    Attributes:
        instances: :class:`FrameInstances` with masks ``[N, H, W]``, scores ``[N]``, labels
            ``[N]``, class_probs ``[N, C]`` and embeddings ``[N, D]`` (no boxes, no id_probs).
        source: ``[N]`` int GT instance index (row of the video's GT), -1 for a false positive.
        duplicate: ``[N]`` bool, True for a duplicate detection.
    """
    instances: FrameInstances
    source: np.ndarray
    duplicate: np.ndarray

    def __len__(self) -> int:
        return len(self.instances)

    def subset(self, idx) -> "SimFrame":
        idx = np.asarray(idx, dtype=np.int64)
        return SimFrame(self.instances[idx], self.source[idx], self.duplicate[idx])


def class_prob_row(label_col: int, score: float, partner_col: int | None, num_classes: int,
                   rng: np.random.Generator, cfg: DetectionNoise) -> np.ndarray:
    """``[C]`` per-class probabilities peaking at ``label_col`` with value ``score``."""
    row = rng.uniform(0.0, cfg.other_prob, size=num_classes)
    if partner_col is not None:
        row[partner_col] = score * rng.uniform(0.0, cfg.partner_prob)
    row[label_col] = score
    return np.minimum(row, score)  # the label stays the argmax


def simulate_detections(gt_masks: np.ndarray, gt_labels: Sequence[int],
                        category_ids: Sequence[int], pairs: Sequence[tuple[int, int]],
                        cfg: DetectionNoise, embedder: Embedder,
                        rng: np.random.Generator) -> list[SimFrame]:
    """Simulate the per-frame detections of one video.

    Args:
        gt_masks: ``[N, T, H, W]`` bool GT masks (all-False where an instance is absent).
        gt_labels: ``[N]`` GT category ids.
        category_ids: the C category ids, in ``class_probs`` column order.
        pairs: confusable category pairs.
        cfg: :class:`DetectionNoise`.
        embedder: :class:`~tubelet.sim.noise.Embedder` (category vectors).
        rng: the video's generator.
    Returns:
        T :class:`SimFrame` objects.
    """
    gt_masks = np.asarray(gt_masks, dtype=bool)
    n_gt, length, h, w = gt_masks.shape
    labels = [int(x) for x in gt_labels]
    cats = [int(c) for c in category_ids]
    col = {c: i for i, c in enumerate(cats)}
    partner = {a: b for a, b in partner_map(pairs).items() if a in col and b in col}
    identities = np.stack([embedder.identity(lab, rng) for lab in labels]) if n_gt else \
        np.zeros((0, cfg.embedding.dim))
    areas = gt_masks.reshape(n_gt, length, h * w).sum(-1)  # [N, T]
    frames = []
    for t in range(length):
        masks, scores, labs, src, dup, ids = [], [], [], [], [], []
        for g in range(n_gt):
            if areas[g, t] < cfg.min_area or rng.random() < cfg.miss_rate:
                continue
            m = perturb_mask(gt_masks[g, t], rng, cfg.mask, 1.0)
            score = float(np.clip(rng.normal(cfg.tp_score_mean, cfg.tp_score_std), 0.05, 0.99))
            lab = labels[g]
            if lab in partner and rng.random() < cfg.confusion_rate:
                lab = partner[lab]
            if m.any():
                masks.append(m), scores.append(score), labs.append(lab)
                src.append(g), dup.append(False), ids.append(identities[g])
            if rng.random() < cfg.dup_rate:
                d = perturb_mask(gt_masks[g, t], rng, cfg.mask, cfg.dup_scale)
                if d.any():
                    masks.append(d), scores.append(score * rng.uniform(*cfg.dup_score))
                    labs.append(lab), src.append(g), dup.append(True), ids.append(identities[g])
        for _ in range(int(rng.poisson(cfg.fp_rate))):
            m = random_blob(h, w, rng)
            lab = cats[int(rng.integers(len(cats)))]
            if m.any():
                masks.append(m), scores.append(float(rng.uniform(*cfg.fp_score))), labs.append(lab)
                src.append(-1), dup.append(False), ids.append(embedder.identity(lab, rng))
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        n = len(order)
        probs = np.zeros((n, len(cats)))
        for k, i in enumerate(order):
            p = partner.get(labs[i])
            probs[k] = class_prob_row(col[labs[i]], scores[i], None if p is None else col[p],
                                      len(cats), rng, cfg)
        emb = embedder.observe(np.stack([ids[i] for i in order]), rng) if n else \
            np.zeros((0, cfg.embedding.dim))
        inst = FrameInstances(np.stack([masks[i] for i in order]) if n else
                              np.zeros((0, h, w), dtype=bool),
                              np.array([scores[i] for i in order]),
                              np.array([labs[i] for i in order], dtype=np.int64),
                              class_probs=probs, embeddings=emb)
        frames.append(SimFrame(inst, np.array([src[i] for i in order], dtype=np.int64),
                               np.array([dup[i] for i in order], dtype=bool)))
    return frames


@dataclass
class IdHeadNoise:
    """The simulated IAI identity head (see :class:`SimulatedIdHead`)."""
    num_ids: int = 20  # K including the "new" slot (YouTube-VIS 2019)
    true_prob: tuple[float, float] = (0.6, 0.95)  # the object's slot (or "new") ~ U(lo, hi)
    lookalike_prob: tuple[float, float] = (0.0, 0.4)  # slots of same/confusable-category objects
    other_prob: tuple[float, float] = (0.0, 0.05)  # every other column
    fp_new_prob: tuple[float, float] = (0.1, 0.5)  # "new" column of a false positive
    swap_near: float = 0.3  # P(true <-> a look-alike's slot swap) when the look-alike touches it
    swap_far: float = 0.02  # ... when no look-alike touches it
    touch_px: int = 3  # "touch": GT masks within this many pixels


class SimulatedIdHead:
    """ID probabilities ``[N, K]`` derived from the GT identity, fed back by the assigner.

    The head "knows" the slot its memory holds for each GT object: the ID the assigner last gave
    to that object's highest-scoring detection (:meth:`observe`), as IAI's memory stores the
    assigned ID masks. For a detection of GT object g (columns: slots 0..K-2, "new" = K-1):

    - true column = g's slot, or "new" at g's first appearance: ``U(true_prob)``;
    - slots held by other GT objects of g's category or its confusable partner (look-alikes):
      ``U(lookalike_prob)``; every other column: ``U(other_prob)``;
    - with probability ``swap_near`` (a look-alike's GT mask touches g's in this frame) or
      ``swap_far`` (otherwise), the true column's value is swapped with that of a look-alike's
      slot (a touching one if any, else a random one): the head confuses the two.

    A false positive gets ``U(fp_new_prob)`` on "new" and ``U(other_prob)`` elsewhere.
    """

    def __init__(self, cfg: IdHeadNoise, gt_labels: Sequence[int],
                 pairs: Sequence[tuple[int, int]], rng: np.random.Generator):
        self.cfg = cfg
        self.labels = [int(x) for x in gt_labels]
        partner = partner_map(pairs)
        n = len(self.labels)
        self.lookalike = np.array([[i != j and (self.labels[j] == self.labels[i] or
                                                partner.get(self.labels[i]) == self.labels[j])
                                    for j in range(n)] for i in range(n)], dtype=bool).reshape(n, n)
        self.rng = rng
        self.slot_of: dict[int, int] = {}  # GT index -> slot its memory holds

    def probs(self, frame: SimFrame, gt_masks_t: np.ndarray) -> np.ndarray:
        """``[N, K]`` ID probabilities of the frame's detections.

        Args:
            gt_masks_t: ``[N_gt, H, W]`` the GT masks of this frame (for "touch").
        """
        k = self.cfg.num_ids
        new_col = k - 1
        rng, cfg = self.rng, self.cfg
        n = len(frame)
        out = rng.uniform(*cfg.other_prob, size=(n, k))
        if n == 0:
            return out
        touch = touching(gt_masks_t, cfg.touch_px) if np.any(frame.source >= 0) else None
        for i, g in enumerate(frame.source):
            if g < 0:
                out[i, new_col] = rng.uniform(*cfg.fp_new_prob)
                continue
            true_col = self.slot_of.get(int(g), new_col)
            look = [int(h) for h in np.nonzero(self.lookalike[g])[0] if int(h) in self.slot_of
                    and self.slot_of[int(h)] != true_col]
            for h in look:
                out[i, self.slot_of[h]] = rng.uniform(*cfg.lookalike_prob)
            out[i, true_col] = rng.uniform(*cfg.true_prob)
            near = [h for h in look if touch[g, h]]
            swap_p = cfg.swap_near if near else cfg.swap_far
            if look and rng.random() < swap_p:
                pool = near or look
                other = self.slot_of[pool[int(rng.integers(len(pool)))]]
                out[i, [true_col, other]] = out[i, [other, true_col]]
        return out

    def observe(self, frame: SimFrame, result: FrameResult) -> None:
        """Record the IDs the assigner gave (highest-scoring detection of each GT object wins)."""
        seen: set[int] = set()
        for i in np.argsort(-frame.instances.scores, kind="stable"):
            g, tid = int(frame.source[i]), int(result.track_ids[i])
            if g >= 0 and tid >= 0 and g not in seen:
                self.slot_of[g] = tid
                seen.add(g)


__all__ = ["DetectionNoise", "SimFrame", "simulate_detections", "class_prob_row", "IdHeadNoise",
           "SimulatedIdHead"]
