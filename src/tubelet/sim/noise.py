"""The seeded noise model shared by the proposal and detection simulators.

Everything random here draws from a generator made by :func:`rng_for` from ``(seed, *keys)``
alone (numpy ``default_rng`` seeded with the integer sequence), so a video's simulation does
not depend on which other videos were simulated, or in which order.

Pieces (shapes: H, W frame size, D embedding width):

- :func:`perturb_mask`: one noisy copy of a GT mask ``[H, W]``: an integer shift
  ``(dy, dx) ~ round(N(0, shift_px * s))``, then a dilation (r > 0) or erosion (r < 0) by
  ``r ~ round(N(0, morph_px * s))`` steps of the 3x3 cross, then each pixel of the boundary band
  (within ``flip_band`` px of the edge) flipped with probability ``min(flip_prob * s, 0.5)``.
  ``s`` is the degradation scale (1 for a per-frame detection, growing with the distance to the
  key frame for a propagated proposal), capped at ``max_scale``. Erosion can empty a small mask:
  that is a miss, as a real segmenter misses thin objects.
- :func:`random_blob`: a false-positive mask: a rotated ellipse at a uniform position.
- :class:`Embedder`: appearance embeddings. Category vector ``c_k`` (unit, D dims; the two
  categories of a confusable pair are ``normalize(b_pair + pair_spread * u_k)``, so look-alike
  categories also look alike in embedding space); identity vector ``normalize(c_k + id_offset *
  u_i)``, so two same-category instances have cosine ~ ``1 / (1 + id_offset^2)``; an observed
  embedding is ``scale * normalize(identity + noise * n)`` with ``n ~ N(0, I / D)`` (``|n| ~ 1``).
  ``u`` are random unit vectors. The dot products the memory tracker uses are therefore in
  ``[-scale^2, scale^2]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

_CROSS = ndimage.generate_binary_structure(2, 1)  # 3x3 cross: one morphology step = 1 px (L1)

# Stream keys: the second-to-last key of every generator, so streams never collide.
STREAM_CATEGORIES = 0  # category vectors (global, per seed)
STREAM_PROPOSALS = 1  # proposals of one video
STREAM_DETECTIONS = 2  # per-frame detections of one video
STREAM_ID_HEAD = 3  # simulated IAI identity probabilities of one video
STREAM_BENCH = 4  # anything else the benchmark draws


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """The generator of ``(seed, *keys)`` (all non-negative ints), independent of call order."""
    vals = [int(seed), *(int(k) for k in keys)]
    if any(v < 0 for v in vals):
        raise ValueError(f"seed and keys must be >= 0, got {vals}")
    return np.random.default_rng(vals)


@dataclass
class MaskNoise:
    """Mask degradation at scale 1; every amplitude is multiplied by the scale ``s``."""
    shift_px: float = 1.0  # std of the integer shift (pixels, per axis)
    morph_px: float = 0.7  # std of the dilation (+) / erosion (-) radius (pixels)
    flip_prob: float = 0.15  # probability a boundary-band pixel flips
    flip_band: int = 1  # half width of the boundary band (pixels)
    max_scale: float = 6.0  # cap on the scale s


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` half-open tight box of a ``[H, W]`` mask, None when empty."""
    rows = np.flatnonzero(mask.any(1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def perturb_mask(mask: np.ndarray, rng: np.random.Generator, noise: MaskNoise,
                 scale: float = 1.0) -> np.ndarray:
    """A noisy copy of ``mask [H, W]`` (bool) at degradation scale ``scale`` (module docstring).

    Works on the mask's box plus a margin, so the cost scales with the object, not the frame.
    Returns ``[H, W]`` bool (empty for an empty input; may be empty after erosion).
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    out = np.zeros((h, w), dtype=bool)
    box = _bbox(mask)
    if box is None:
        return out
    s = min(max(scale, 0.0), noise.max_scale)
    dy, dx = np.rint(rng.normal(0.0, noise.shift_px * s, size=2)).astype(int)
    r = int(np.rint(rng.normal(0.0, noise.morph_px * s)))
    pad = abs(r) + noise.flip_band + 2
    y0, y1, x0, x1 = box
    y0, y1, x0, x1 = max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x1 + pad, w)
    crop = mask[y0:y1, x0:x1].copy()  # [h', w'] source crop with room to grow
    if r > 0:
        crop = ndimage.binary_dilation(crop, _CROSS, iterations=r)
    elif r < 0:
        crop = ndimage.binary_erosion(crop, _CROSS, iterations=-r)
    p = min(noise.flip_prob * s, 0.5)
    if p > 0 and noise.flip_band > 0 and crop.any():
        band = ndimage.binary_dilation(crop, _CROSS, iterations=noise.flip_band) & \
            ~ndimage.binary_erosion(crop, _CROSS, iterations=noise.flip_band)
        crop ^= band & (rng.random(crop.shape) < p)
    # paste the crop shifted by (dy, dx), clipped to the frame
    ty0, tx0 = y0 + dy, x0 + dx
    sy0, sx0 = max(-ty0, 0), max(-tx0, 0)
    ty0c, tx0c = max(ty0, 0), max(tx0, 0)
    ty1, tx1 = min(ty0 + crop.shape[0], h), min(tx0 + crop.shape[1], w)
    if ty1 > ty0c and tx1 > tx0c:
        out[ty0c:ty1, tx0c:tx1] = crop[sy0:sy0 + ty1 - ty0c, sx0:sx0 + tx1 - tx0c]
    return out


def ellipse_mask(height: int, width: int, cy: float, cx: float, a: float, b: float,
                 theta: float) -> np.ndarray:
    """``[H, W]`` bool ellipse: centre (cy, cx) px, semi-axes a (along angle ``theta``) and b,
    evaluated at pixel centres over its box only (clipped by the frame)."""
    r = max(a, b)
    y0, y1 = max(int(cy - r), 0), min(int(np.ceil(cy + r)) + 1, height)
    x0, x1 = max(int(cx - r), 0), min(int(np.ceil(cx + r)) + 1, width)
    out = np.zeros((height, width), dtype=bool)
    if y1 <= y0 or x1 <= x0 or a <= 0 or b <= 0:
        return out
    yy = np.arange(y0, y1)[:, None] + 0.5 - cy  # [h', 1]
    xx = np.arange(x0, x1)[None, :] + 0.5 - cx  # [1, w']
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = yy * np.cos(theta) - xx * np.sin(theta)
    out[y0:y1, x0:x1] = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    return out


def random_blob(height: int, width: int, rng: np.random.Generator, min_radius: float = 0.04,
                max_radius: float = 0.12) -> np.ndarray:
    """A false-positive mask ``[H, W]``: an ellipse with semi-axes ``U(min, max) * H`` each, a
    uniform angle and a centre uniform over the frame (it may be clipped by the border)."""
    a, b = rng.uniform(min_radius, max_radius, size=2) * height
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    return ellipse_mask(height, width, cy, cx, a, b, rng.uniform(0, np.pi))


def touching(masks: np.ndarray, px: int) -> np.ndarray:
    """``[N, N]`` bool: masks ``[N, H, W]`` i and j (i != j) come within ``px`` pixels (L1) of
    each other, i.e. mask i dilated ``px`` times by the 3x3 cross meets mask j. Empty masks touch
    nothing; the diagonal is False."""
    masks = np.asarray(masks, dtype=bool)
    n = len(masks)
    out = np.zeros((n, n), dtype=bool)
    boxes = [_bbox(m) for m in masks]
    for i in range(n):
        if boxes[i] is None:
            continue
        y0, y1, x0, x1 = boxes[i]
        h, w = masks.shape[1:]
        y0, y1, x0, x1 = max(y0 - px, 0), min(y1 + px, h), max(x0 - px, 0), min(x1 + px, w)
        grown = ndimage.binary_dilation(masks[i, y0:y1, x0:x1], _CROSS, iterations=px) \
            if px > 0 else masks[i, y0:y1, x0:x1]
        for j in range(n):
            if j != i and boxes[j] is not None:
                out[i, j] = bool((grown & masks[j, y0:y1, x0:x1]).any())
    return out


def partner_map(pairs: Sequence[tuple[int, int]]) -> dict[int, int]:
    """``{category: its confusable partner}`` from pairs (each category in at most one pair)."""
    out: dict[int, int] = {}
    for a, b in pairs:
        for x, y in ((a, b), (b, a)):
            if x in out and out[x] != y:
                raise ValueError(f"category {x} is in two confusable pairs")
            out[x] = y
    return out


@dataclass
class EmbeddingNoise:
    """Appearance embeddings (module docstring)."""
    dim: int = 64  # D
    scale: float = 3.0  # norm of an observed embedding (dot products within +-scale^2)
    pair_spread: float = 0.6  # confusable categories: normalize(pair base + spread * u)
    id_offset: float = 0.5  # identity = normalize(category vector + id_offset * u)
    noise: float = 0.3  # observed = normalize(identity + noise * n), |n| ~ 1


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Embedder:
    """Category, identity and observed embeddings (module docstring).

    Args:
        category_ids: the C category ids.
        pairs: confusable category pairs.
        cfg: :class:`EmbeddingNoise`.
        seed: the category vectors come from ``rng_for(seed, STREAM_CATEGORIES)``.
    """

    def __init__(self, category_ids: Sequence[int], pairs: Sequence[tuple[int, int]],
                 cfg: EmbeddingNoise, seed: int):
        self.cfg = cfg
        rng = rng_for(seed, STREAM_CATEGORIES)
        d = cfg.dim
        partner = partner_map(pairs)
        self.vectors: dict[int, np.ndarray] = {}  # category id -> [D] unit
        for c in sorted(category_ids):
            if c in self.vectors:
                continue
            if c in partner and partner[c] in category_ids:
                base = _unit(rng.standard_normal(d))
                for k in sorted((c, partner[c])):
                    self.vectors[k] = _unit(base + cfg.pair_spread * _unit(rng.standard_normal(d)))
            else:
                self.vectors[c] = _unit(rng.standard_normal(d))

    def identity(self, category_id: int, rng: np.random.Generator) -> np.ndarray:
        """A new identity vector ``[D]`` (unit) of category ``category_id``."""
        u = _unit(rng.standard_normal(self.cfg.dim))
        return _unit(self.vectors[int(category_id)] + self.cfg.id_offset * u)

    def observe(self, identities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Observed embeddings ``[N, D]`` (norm ``scale``) of identity vectors ``[N, D]``."""
        identities = np.asarray(identities, dtype=np.float64).reshape(-1, self.cfg.dim)
        n = rng.standard_normal(identities.shape) / np.sqrt(self.cfg.dim)  # [N, D], |n| ~ 1
        return self.cfg.scale * _unit(identities + self.cfg.noise * n)


__all__ = ["MaskNoise", "perturb_mask", "ellipse_mask", "random_blob", "partner_map",
           "EmbeddingNoise", "Embedder", "touching", "rng_for", "STREAM_CATEGORIES",
           "STREAM_PROPOSALS", "STREAM_DETECTIONS", "STREAM_ID_HEAD", "STREAM_BENCH"]
