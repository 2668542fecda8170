"""Overlay rendering: translucent masks, contours and labels per track; id PNGs; whole videos.

Shape vocabulary: N instances, T frames, H x W frame size.

Drawing order is the painter's: instance ``i + 1`` is drawn over instance ``i``. Each pixel is
owned by the last instance covering it, so it is blended once (colour moves from the frame pixel
toward the owner's colour by ``alpha``) instead of darkening where masks overlap, and the id PNG
of the same masks stores that same owner. :func:`render_video` draws the highest score last.
"""
from __future__ import annotations

import colorsys
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from tubelet.errors import InputError
from tubelet.structures import rle as rle_ops
from tubelet.structures.instances import VideoInstances
from tubelet.video.reader import VideoSource
from tubelet.video.writer import VideoWriter

_GOLDEN = 0.618033988749895  # 1/phi: successive ids land far apart on the hue circle
_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-neighbourhood for erosion


def color_for_track(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a track id.

    Hue advances by the golden ratio conjugate per id (any run of consecutive ids is spread
    almost evenly around the hue circle); saturation and value are fixed high so that colours
    stay readable over video. The same id always gives the same colour.
    """
    h = (int(track_id) * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def owner_map(masks: np.ndarray) -> np.ndarray:
    """Index of the instance that owns each pixel (last covering instance), -1 where none.

    Args:
        masks: ``[N, H, W]`` bool.
    Returns:
        ``[H, W]`` int64.
    """
    masks = np.asarray(masks, dtype=bool)
    n, h, w = masks.shape
    if n == 0:
        return np.full((h, w), -1, dtype=np.int64)
    rev = masks[::-1]  # argmax finds the first True, i.e. the last instance of the original order
    last = n - 1 - np.argmax(rev, axis=0)  # [H, W]
    return np.where(masks.any(axis=0), last, -1)


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def draw_overlay(frame: np.ndarray, masks: np.ndarray, track_ids: Sequence[int],
                 labels: Sequence[str] | None = None, alpha: float = 0.5,
                 contour_width: int = 1) -> np.ndarray:
    """Draw translucent masks, contours and labels over a frame.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB (not modified).
        masks: ``[N, H, W]`` bool; later instances are drawn over earlier ones.
        track_ids: ``[N]`` ints, picking each instance's colour (:func:`color_for_track`).
        labels: N strings (e.g. ``"#3 dog 0.87"``), ``""`` or ``None`` for no label.
        alpha: fill opacity: an owned pixel becomes ``(1 - alpha) * pixel + alpha * colour``.
        contour_width: contour thickness in pixels: the visible region minus its erosion by
            ``contour_width`` 4-neighbour steps, painted in the full track colour.

    Returns:
        ``[H, W, 3]`` uint8, a new array. Label boxes (the track colour with black or white text,
        PIL's default font) sit just above the top-left corner of the mask's bounding box, or
        inside it when there is no room above, and are shifted to stay inside the frame.
    """
    frame = np.asarray(frame)
    masks = np.asarray(masks, dtype=bool)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"draw_overlay expects a uint8 [H, W, 3] frame, got {frame.dtype} "
                         f"{list(frame.shape)}")
    h, w = frame.shape[:2]
    n = len(track_ids)
    if masks.shape != (n, h, w):
        raise ValueError(f"draw_overlay: masks {list(masks.shape)} for {n} track ids and a "
                         f"{h}x{w} frame")
    if labels is not None and len(labels) != n:
        raise ValueError(f"draw_overlay: {len(labels)} labels for {n} instances")
    if contour_width < 1:
        raise ValueError(f"contour_width must be >= 1, got {contour_width}")
    if n == 0:
        return frame.copy()
    out = frame.astype(np.float32)  # [H, W, 3]
    colors = np.array([color_for_track(t) for t in track_ids], dtype=np.float32)  # [N, 3]
    owner = owner_map(masks)  # [H, W]
    fg = owner >= 0
    out[fg] = (1.0 - alpha) * out[fg] + alpha * colors[owner[fg]]
    for i in range(n):
        visible = owner == i  # [H, W]
        if not visible.any():
            continue
        inner = ndimage.binary_erosion(visible, _CROSS, iterations=contour_width, border_value=0)
        out[visible & ~inner] = colors[i]
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if labels is not None and any(labels):
        out = _draw_labels(out, masks, track_ids, labels)
    return out


def _draw_labels(img: np.ndarray, masks: np.ndarray, track_ids: Sequence[int],
                 labels: Sequence[str]) -> np.ndarray:
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = _font()
    for i, text in enumerate(labels):
        if not text or not masks[i].any():
            continue
        ys = np.flatnonzero(masks[i].any(axis=1))
        xs = np.flatnonzero(masks[i].any(axis=0))
        x0, y0 = int(xs[0]), int(ys[0])
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = r - l + 2, b - t + 2  # 1 px margin each side
        y = y0 - th if y0 - th >= 0 else y0  # above the box if it fits, else just inside
        x = min(max(x0, 0), max(w - tw, 0))
        y = min(max(y, 0), max(h - th, 0))
        color = color_for_track(track_ids[i])
        luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=color)
        draw.text((x + 1 - l, y + 1 - t), text, font=font,
                  fill=(0, 0, 0) if luma > 140 else (255, 255, 255))
    return np.asarray(pil).copy()


def palette() -> list[int]:
    """The 256-entry PNG palette (768 ints): 0 black background, k the colour of track k."""
    pal = [0, 0, 0]
    for k in range(1, 256):
        pal.extend(color_for_track(k))
    return pal


def id_png(masks: np.ndarray, track_ids: Sequence[int], height: int, width: int) -> Image.Image:
    """An image whose pixel value is the track id of the instance owning that pixel.

    Args:
        masks: ``[N, H, W]`` bool (later instances over earlier ones, as in :func:`draw_overlay`).
        track_ids: ``[N]`` ints >= 1 (0 is the background, so it cannot be a track id).
        height, width: H, W (needed when N = 0).

    Returns:
        a palette ('P') image with the :func:`palette` colours when every id is <= 255 (the usual
        DAVIS / YouTube-VIS annotation format); otherwise a 16-bit greyscale ('I;16') image,
        which PNG stores losslessly for ids up to 65535 but without colours. Ids > 65535 or
        < 1 raise ``ValueError``.
    """
    masks = np.asarray(masks, dtype=bool).reshape(-1, height, width)
    ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
    if len(ids) != masks.shape[0]:
        raise ValueError(f"id_png: {len(ids)} track ids for {masks.shape[0]} masks")
    if len(ids) and (ids.min() < 1 or ids.max() > 65535):
        raise ValueError(f"id_png: track ids must be in [1, 65535], got {ids.min()}..{ids.max()}")
    owner = owner_map(masks)  # [H, W]
    lut = np.concatenate([[0], ids])  # owner -1 -> 0 background
    values = lut[owner + 1]  # [H, W]
    if len(ids) == 0 or ids.max() <= 255:
        img = Image.fromarray(values.astype(np.uint8))  # 'L'
        img.putpalette(palette())  # 'L' -> 'P', pixel values unchanged
        return img
    return Image.fromarray(values.astype(np.uint16))  # mode 'I;16'


def instance_labels(video: VideoInstances, category_names: dict[int, str],
                    with_scores: bool = True) -> list[str]:
    """``"#<track id> <category name> <score>"`` per instance; unknown categories -> ``cat<id>``."""
    out = []
    for tid, lab, score in zip(video.track_ids, video.labels, video.scores):
        name = category_names.get(int(lab), f"cat{int(lab)}")
        out.append(f"#{int(tid)} {name}" + (f" {score:.2f}" if with_scores else ""))
    return out


def render_video(source: VideoSource, video: VideoInstances, category_names: dict[int, str],
                 out_mp4: str | os.PathLike | None = None, png_dir: str | os.PathLike | None = None,
                 progress: bool = True, alpha: float = 0.5, with_scores: bool = True,
                 results_path: str | None = None, replace: bool = False) -> int:
    """Stream ``source``, drawing the instances of ``video`` on each frame.

    Only the current frame's N masks are decoded from RLE (``[N, H, W]``); the video is never
    held as a dense ``[N, T, H, W]`` tensor. Instances are drawn in increasing score order so
    the highest-scoring one is on top (and owns overlapping pixels in the PNGs).

    Args:
        source: the frames; its size and frame count must equal ``video``'s.
        video: the tracks to draw; ``track_ids`` pick colours and PNG values (must be >= 1).
        category_names: category id -> name for labels.
        out_mp4: overlay video to write (H.264, fps of the source or 24 when unknown).
        png_dir: folder of one id PNG per frame (:func:`id_png`), named like the source frames;
            written into a temporary folder and renamed at the end. Must not exist or be empty,
            unless ``replace`` (then a complete earlier folder is swapped out at the end).
        progress: show a tqdm progress bar.
        alpha: mask fill opacity.
        with_scores: put the score in each label.
        results_path: the file ``video`` came from, named in error messages.
        replace: overwrite an existing ``png_dir`` (an identical rerun of ``tubelet predict``
            must succeed); without it a non-empty folder is refused before any work.

    Returns:
        the number of frames rendered.
    """
    from tqdm import tqdm

    if out_mp4 is None and png_dir is None:
        raise ValueError("render_video needs out_mp4 and/or png_dir")
    where = results_path or "the results"
    if (video.height, video.width) != (source.height, source.width):
        raise InputError(f"masks of {where} are {video.height}x{video.width} (HxW) but the frames "
                         f"of {source.path} are {source.height}x{source.width}", path=results_path)
    if source.num_frames is not None and video.length != source.num_frames:
        raise InputError(f"{where} has {video.length} frames but {source.path} has "
                         f"{source.num_frames}", path=results_path)
    if len(video) and int(np.min(video.track_ids)) < 1:
        raise ValueError("render_video: track ids must be >= 1 (0 is the PNG background)")
    order = np.argsort(video.scores, kind="stable")  # ascending: best drawn last, on top
    video = video[order]
    labels = instance_labels(video, category_names, with_scores)
    h, w = source.height, source.width

    png_final = png_tmp = None
    if png_dir is not None:
        png_final = Path(png_dir)
        if png_final.exists() and not png_final.is_dir():
            raise InputError("PNG output folder is a file", path=str(png_final))
        if not replace and png_final.is_dir() and any(png_final.iterdir()):
            raise InputError("PNG output folder exists and is not empty; remove it or choose "
                             "another", path=str(png_final))
        png_final.parent.mkdir(parents=True, exist_ok=True)
        png_tmp = Path(tempfile.mkdtemp(prefix=f".{png_final.name}.", suffix=".tmp",
                                        dir=png_final.parent))
    writer = None
    try:
        if out_mp4 is not None:
            writer = VideoWriter(out_mp4, source.fps or 24.0, w, h)
        t = 0
        with tqdm(total=source.num_frames, disable=not progress, unit="frame",
                  desc=f"render {source.name}") as bar:
            for frame in source:
                if t >= video.length:
                    raise InputError(f"{source.path} has more frames than the {video.length} of "
                                     f"{where}", path=results_path)
                masks = rle_ops.decode_many(video.frame(t), h, w)  # [N, H, W] of frame t only
                if writer is not None:
                    writer.write(draw_overlay(frame, masks, video.track_ids, labels, alpha))
                if png_tmp is not None:
                    id_png(masks, video.track_ids, h, w).save(
                        png_tmp / f"{source.frame_stem(t)}.png")
                t += 1
                bar.update(1)
        if t != video.length:
            raise InputError(f"{source.path} has {t} frames but {where} has {video.length}",
                             path=results_path)
        if png_tmp is not None:
            old = None
            if png_final.exists():  # rename cannot replace a folder: move the old one aside
                old = Path(tempfile.mkdtemp(prefix=f".{png_final.name}.", suffix=".tmp",
                                            dir=png_final.parent))
                os.replace(png_final, old / "old")
            os.replace(png_tmp, png_final)
            png_tmp = None
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if png_tmp is not None:
            shutil.rmtree(png_tmp, ignore_errors=True)
    return t
