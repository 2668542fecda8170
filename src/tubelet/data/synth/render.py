"""Streaming renderer: one frame at a time from a :class:`~tubelet.data.synth.scene.Scene`.

Per frame: warp the static world background by the camera affine (PIL, bilinear), paint the
objects far to near by evaluating their shape and texture analytically over their bounding box
(numpy), keep an id map of who owns each pixel, apply the global lighting drift and sensor
noise. An instance's mask is the set of pixels it owns after painting, so masks are exactly the
visible parts (depth order and frame clipping included) and never overlap.

Memory is O(H W + objects): nothing is kept from one frame to the next except object states.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from tubelet.data.synth.config import SynthConfig, validate
from tubelet.data.synth.scene import Scene, SceneObject, plan_scene, step
from tubelet.data.synth.shapes import texture_weight


@dataclass
class SynthFrame:
    """One generated frame.

    ``image``: uint8 ``[H, W, 3]`` RGB. ``instances``: every annotated instance of the video, in
    the same order on every frame, as ``(instance_id, category_id, mask)`` with ``mask`` a bool
    ``[H, W]`` of the visible pixels, or ``None`` when the instance is not born yet, out of frame,
    fully occluded, or its visible part is smaller than ``min_area``.
    """
    index: int
    image: np.ndarray
    instances: list[tuple[int, int, np.ndarray | None]]


def video_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of video ``index``: seeded by (seed, index) alone, so videos are independent
    and can be generated in any order or in parallel."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    return np.random.default_rng([int(seed), int(index)])


def video_length(cfg: SynthConfig, seed: int, index: int) -> int:
    """Number of frames of video ``index`` without generating it (the length is the first draw)."""
    from tubelet.data.synth.scene import draw_length
    return draw_length(cfg, video_rng(seed, index))


# ----------------------------------------------------------------------------------- background
def render_background(cfg: SynthConfig, scene: Scene, rng: np.random.Generator) -> Image.Image:
    """Static world texture covering every camera view: gradient, smooth and fine noise, clutter.

    Returns a PIL RGB image of size ``2 * view_half + margin``; world (0, 0) is its centre.
    """
    bw, bh = (int(math.ceil(2 * v)) + 8 for v in scene.view_half)
    c0, c1 = rng.uniform(40, 215, size=3), rng.uniform(40, 215, size=3)
    a = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:bh, 0:bw].astype(np.float32)
    ramp = ((xs - bw / 2) * math.cos(a) + (ys - bh / 2) * math.sin(a)) / max(bw, bh) + 0.5  # [bh, bw]
    base = c0 + (cfg.bg_gradient * ramp)[..., None] * (c1 - c0)                          # [bh, bw, 3]
    # smooth blotches: a coarse random grid upsampled bicubically
    coarse = rng.uniform(-1, 1, size=(6, 9, 3))
    coarse_img = Image.fromarray(((coarse + 1) * 127.5).astype(np.uint8)).resize((bw, bh), Image.Resampling.BICUBIC)
    smooth = np.asarray(coarse_img, dtype=np.float32) / 127.5 - 1.0
    noise = cfg.bg_noise * 255 * (smooth + 0.5 * rng.standard_normal((bh, bw, 3)))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    scale = min(cfg.height, cfg.width)
    for _ in range(cfg.bg_clutter):
        kind = int(rng.integers(4))
        cx, cy = rng.uniform(0, bw), rng.uniform(0, bh)
        r = rng.uniform(0.03, 0.15) * scale
        col = tuple(int(x) for x in rng.integers(0, 256, size=3))
        if kind == 0:
            draw.ellipse([cx - r, cy - 0.6 * r, cx + r, cy + 0.6 * r], fill=col)
        elif kind == 1:
            draw.rectangle([cx - r, cy - r * 0.4, cx + r, cy + r * 0.4], fill=col)
        elif kind == 2:
            pts = [(cx + r * math.cos(t), cy + r * math.sin(t))
                   for t in np.sort(rng.uniform(0, 2 * np.pi, size=5))]
            draw.polygon(pts, fill=col)
        else:
            draw.line([cx - r, cy - r, cx + r, cy + r * rng.uniform(-1, 1)], fill=col,
                      width=max(1, int(r * 0.15)))
    return img


# ----------------------------------------------------------------------------------- painting
def _paint(obj: SceneObject, slot: int, frame: np.ndarray, idmap: np.ndarray,
           cam_c: np.ndarray, zoom: float) -> None:
    """Paint ``obj`` onto ``frame [H, W, 3]`` float32 and mark its pixels ``slot`` in ``idmap``."""
    H, W = idmap.shape
    S = zoom * obj.size                                             # radius in frame pixels
    cx, cy = zoom * (obj.pos - cam_c) + np.array([W / 2, H / 2])    # centre in frame pixels
    x0, x1 = max(int(math.floor(cx - S)), 0), min(int(math.ceil(cx + S)) + 1, W)
    y0, y1 = max(int(math.floor(cy - S)), 0), min(int(math.ceil(cy + S)) + 1, H)
    if x0 >= x1 or y0 >= y1:
        return
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]  # [1, w] pixel centres
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]  # [h, 1]
    ca, sa = math.cos(obj.angle) / S, math.sin(obj.angle) / S
    u = dx * ca + dy * sa                                           # [h, w] local coordinates:
    v = dy * ca - dx * sa                                           # R(-angle) (x - centre) / S
    inside = obj.fn(u, v)                                           # [h, w] bool
    if not inside.any():
        return
    w = texture_weight(obj.texture, u[inside], v[inside], obj.tex_angle)          # [k]
    frame[y0:y1, x0:x1][inside] = obj.color_a + w[:, None] * (obj.color_b - obj.color_a)
    idmap[y0:y1, x0:x1][inside] = slot


def generate_video(cfg: SynthConfig, seed: int, index: int) -> Iterator[SynthFrame]:
    """Stream the frames of video ``index`` (``seed`` and ``index`` >= 0 fix it completely).

    Yields :class:`SynthFrame` one at a time; memory stays constant in the video length.
    """
    validate(cfg)
    rng = video_rng(seed, index)
    scene = plan_scene(cfg, rng)
    background = render_background(cfg, scene, rng)
    bw, bh = background.size
    H, W = cfg.height, cfg.width
    slots = {id(o): k + 1 for k, o in enumerate(scene.objects)}     # idmap value per object
    min_area = max(int(cfg.min_area), 1)
    for t in range(scene.length):
        step(scene, t, rng)
        cam_c, zoom = scene.camera.at(t)
        # frame pixel (x, y) -> background pixel: (x - W/2) / z + c + (bw/2, bh/2)
        coeffs = (1 / zoom, 0.0, -W / 2 / zoom + cam_c[0] + bw / 2,
                  0.0, 1 / zoom, -H / 2 / zoom + cam_c[1] + bh / 2)
        bg = background.transform((W, H), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
        frame = np.asarray(bg, dtype=np.float32).copy()             # [H, W, 3]
        idmap = np.zeros((H, W), dtype=np.int16)                    # 0 = background
        for obj in scene.objects:                                   # far to near
            if obj.dead or t < obj.birth:
                continue
            _paint(obj, slots[id(obj)], frame, idmap, cam_c, zoom)
        gain, offset = scene.lighting.at(t)
        frame = frame * gain + offset                               # global drift, whole frame
        if cfg.frame_noise > 0:
            frame += rng.standard_normal((H, W, 3), dtype=np.float32) * (cfg.frame_noise * 255)
        image = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        instances = []
        for obj in scene.instances:
            mask = None
            if not obj.dead and t >= obj.birth:
                mask = idmap == slots[id(obj)]
                if int(np.count_nonzero(mask)) < min_area:
                    mask = None
            instances.append((obj.instance_id, obj.category_id, mask))
        yield SynthFrame(t, image, instances)

