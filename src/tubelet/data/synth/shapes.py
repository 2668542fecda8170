"""Categories of the synthetic benchmark: a shape and a texture, drawn in object-local coordinates.

Every shape lives in local coordinates ``(u, v)`` scaled so that its circumscribed radius is 1
(the object's ``size`` in pixels is that radius). Shapes are evaluated analytically at pixel
centres, so a mask is exact (no resampling of a sprite) and containment in continuous space
implies containment of the rasterised masks, which the full-occlusion scheduler relies on.

Geometry constants per shape (all relative to the circumscribed radius 1):

* ``r_in``:  radius of the largest centred disc inside the shape (0 for the ring: it has a hole);
* ``h_min``: the smallest support value ``min_dir max_{p in shape} <p, dir>``; a target whose
  centre is farther than ``R_occ - h_min * s`` from a covering disc of radius ``R_occ`` pokes out.

Textures return a weight ``w in [0, 1]`` per pixel that mixes the two palette colours
``A + w (B - A)``; they are drawn in local coordinates, so they move, turn and scale with the
object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]   # (u [h,w], v [h,w]) -> bool [h,w]


@dataclass(frozen=True)
class Category:
    """One annotated category. ``colors`` are the palette ``(A, B)`` as RGB in [0, 1]."""
    id: int
    name: str
    shape: str
    texture: str
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class ShapeGeom:
    fn: ShapeFn
    r_in: float    # inscribed radius (largest centred disc inside)
    h_min: float   # smallest support value over directions


# ----------------------------------------------------------------------------------- shapes
def _regular_polygon(k: int, phase: float = math.pi / 2) -> ShapeFn:
    """Regular k-gon with circumradius 1, one vertex at angle ``phase``: k half-plane tests."""
    r_in = math.cos(math.pi / k)
    normals = [(math.cos(phase + math.pi / k * (2 * j + 1)), math.sin(phase + math.pi / k * (2 * j + 1)))
               for j in range(k)]  # edge normals lie between consecutive vertices

    def fn(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        inside = np.ones(u.shape, dtype=bool)
        for nx, ny in normals:
            inside &= u * nx + v * ny <= r_in
        return inside
    return fn


def _disc(u, v):
    return u * u + v * v <= 1.0


_ELLIPSE_MINOR = 0.62   # minor semi-axis: a disc squashed by ~40%, still easy to confuse at a glance


def _ellipse(u, v):
    return u * u + (v / _ELLIPSE_MINOR) ** 2 <= 1.0


_SQ = 1.0 / math.sqrt(2.0)   # half side of the square with circumradius 1


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= _SQ


# Rounded square with half side b and corner radius r, circumradius (b - r) sqrt(2) + r = 1.
_RS_R_FRAC = 0.3
_RS_B = 1.0 / ((1.0 - _RS_R_FRAC) * math.sqrt(2.0) + _RS_R_FRAC)
_RS_R = _RS_R_FRAC * _RS_B


def _rounded_square(u, v):
    du = np.maximum(np.abs(u) - (_RS_B - _RS_R), 0.0)
    dv = np.maximum(np.abs(v) - (_RS_B - _RS_R), 0.0)
    return (du * du + dv * dv <= _RS_R * _RS_R) & (np.abs(u) <= _RS_B) & (np.abs(v) <= _RS_B)


_STAR_INNER = 0.45
# Star edge from outer vertex (1, 0) to inner vertex at angle pi/5 in the folded wedge [0, pi/5].
_SX2, _SY2 = _STAR_INNER * math.cos(math.pi / 5), _STAR_INNER * math.sin(math.pi / 5)
_SNX, _SNY = _SY2, 1.0 - _SX2            # normal of the edge (outward), unnormalised
_SC = _SNX * 1.0                          # n . P1


def _star(u, v):
    """5-point star: fold the polar angle into one half-wedge, then one half-plane test."""
    r = np.sqrt(u * u + v * v)
    phi = np.mod(np.arctan2(v, u) - math.pi / 2, 2 * math.pi / 5)  # outer vertex at 90 deg
    phi = np.minimum(phi, 2 * math.pi / 5 - phi)                    # [0, pi/5]
    return r * (np.cos(phi) * _SNX + np.sin(phi) * _SNY) <= _SC


_RING_INNER = 0.55


def _ring(u, v):
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= _RING_INNER ** 2)


_CROSS_W = 0.3
_CROSS_L = math.sqrt(1.0 - _CROSS_W ** 2)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= _CROSS_L) & (av <= _CROSS_W)) | ((av <= _CROSS_L) & (au <= _CROSS_W))


# Distractor shapes: never annotated, none of them equals a category shape.
def _crescent(u, v):
    return (u * u + v * v <= 1.0) & ((u - 0.45) ** 2 + v * v > 0.75 ** 2)


def _blob(u, v):
    r = np.sqrt(u * u + v * v)
    th = np.arctan2(v, u)
    return r <= 0.72 + 0.18 * np.sin(3 * th) + 0.1 * np.cos(5 * th + 1.0)


def _lshape(u, v):
    return ((u >= -0.7) & (u <= -0.2) & (np.abs(v) <= 0.7)) | ((v >= 0.2) & (v <= 0.7) & (np.abs(u) <= 0.7))


def _bar(u, v):
    return (np.abs(u) <= 0.98) & (np.abs(v) <= 0.16)


SHAPES: dict[str, ShapeGeom] = {
    "disc": ShapeGeom(_disc, 1.0, 1.0),
    "ellipse": ShapeGeom(_ellipse, _ELLIPSE_MINOR, _ELLIPSE_MINOR),
    "square": ShapeGeom(_square, _SQ, _SQ),
    "rounded_square": ShapeGeom(_rounded_square, _RS_B, _RS_B),
    "hexagon": ShapeGeom(_regular_polygon(6), math.cos(math.pi / 6), math.cos(math.pi / 6)),
    "triangle": ShapeGeom(_regular_polygon(3), 0.5, 0.5),
    # star: the nearest boundary points are the inner vertices (the edge's foot lies outside it)
    "star": ShapeGeom(_star, _STAR_INNER, math.cos(math.pi / 5)),
    "ring": ShapeGeom(_ring, 0.0, 1.0),
    # cross: the nearest boundary points are the re-entrant corners (W, W)
    "cross": ShapeGeom(_cross, _CROSS_W * math.sqrt(2.0), (_CROSS_L + _CROSS_W) / math.sqrt(2.0)),
}
DISTRACTOR_SHAPES: dict[str, ShapeFn] = {
    "crescent": _crescent, "blob": _blob, "lshape": _lshape, "bar": _bar,
}

# ----------------------------------------------------------------------------------- textures
TEXTURE_FREQ = 2.2   # stripes / checker / dots per unit radius: ~4-5 periods across an object


def texture_weight(texture: str, u: np.ndarray, v: np.ndarray, angle: float = 0.0,
                   freq: float = TEXTURE_FREQ) -> np.ndarray:
    """Mixing weight ``w [h, w]`` float32 in [0, 1] of a texture at local coordinates (u, v)."""
    if texture == "solid":
        return np.zeros(u.shape, dtype=np.float32)
    ca, sa = math.cos(angle), math.sin(angle)
    if texture == "gradient":
        return np.clip((u * ca + v * sa + 1.0) * 0.5, 0.0, 1.0).astype(np.float32)
    if texture == "stripes":
        return (np.floor((u * ca + v * sa) * freq) % 2).astype(np.float32)
    if texture == "checker":
        return ((np.floor(u * freq) + np.floor(v * freq)) % 2).astype(np.float32)
    if texture == "dots":
        fu = (u * freq) % 1.0 - 0.5
        fv = (v * freq) % 1.0 - 0.5
        return (fu * fu + fv * fv <= 0.32 ** 2).astype(np.float32)
    raise KeyError(f"unknown texture {texture!r}")


TEXTURES = ("stripes", "dots", "checker", "solid", "gradient")

# ----------------------------------------------------------------------------------- categories
# Confusable pairs share the texture and the palette, so only the outline tells them apart.
_PAL = {
    "red": ((0.85, 0.20, 0.18), (0.98, 0.85, 0.30)),
    "blue": ((0.15, 0.30, 0.80), (0.75, 0.90, 0.98)),
    "green": ((0.15, 0.55, 0.25), (0.85, 0.95, 0.55)),
    "purple": ((0.50, 0.20, 0.65), (0.95, 0.70, 0.90)),
    "orange": ((0.95, 0.55, 0.10), (0.30, 0.15, 0.05)),
    "teal": ((0.10, 0.60, 0.65), (0.05, 0.20, 0.25)),
    "grey": ((0.92, 0.92, 0.88), (0.35, 0.35, 0.40)),
}
CATEGORIES: tuple[Category, ...] = (
    Category(1, "disc_stripes", "disc", "stripes", _PAL["red"]),
    Category(2, "hexagon_stripes", "hexagon", "stripes", _PAL["red"]),
    Category(3, "square_checker", "square", "checker", _PAL["blue"]),
    Category(4, "rounded_square_checker", "rounded_square", "checker", _PAL["blue"]),
    Category(5, "ellipse_dots", "ellipse", "dots", _PAL["green"]),
    Category(6, "disc_dots", "disc", "dots", _PAL["green"]),
    Category(7, "triangle_gradient", "triangle", "gradient", _PAL["purple"]),
    Category(8, "star_solid", "star", "solid", _PAL["orange"]),
    Category(9, "ring_solid", "ring", "solid", _PAL["teal"]),
    Category(10, "cross_stripes", "cross", "stripes", _PAL["grey"]),
)
CATEGORY_BY_ID: dict[int, Category] = {c.id: c for c in CATEGORIES}
CONFUSABLE_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6))


def confusable_with(category_id: int) -> list[int]:
    """Ids of the categories confusable with ``category_id`` (sorted)."""
    out = {b for a, b in CONFUSABLE_PAIRS if a == category_id}
    out |= {a for a, b in CONFUSABLE_PAIRS if b == category_id}
    return sorted(out)


def categories_json() -> list[dict]:
    """YouTube-VIS category entries with the extra keys ``shape``, ``texture``, ``confusable_with``."""
    return [{"id": c.id, "name": c.name, "supercategory": "synthetic", "shape": c.shape,
             "texture": c.texture, "confusable_with": confusable_with(c.id)} for c in CATEGORIES]


def occluder_shapes(max_kappa: float = 0.2) -> list[str]:
    """Shapes that can cover a target by passing over it: a centred disc of radius ``r_in`` lies
    inside, and the shape does not stick out much beyond it (``1 / r_in - 1 <= max_kappa``)."""
    return [n for n, g in SHAPES.items() if g.r_in > 0 and 1.0 / g.r_in - 1.0 <= max_kappa]
