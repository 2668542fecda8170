"""Tiny frames and reference files for the video tests (``test_video*.py``)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


H, W = 64, 96


def smooth_frames(t_count: int, h: int = H, w: int = W) -> list[np.ndarray]:
    """Spatially smooth frames (H.264 keeps them within a few levels), distinct per frame."""
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for t in range(t_count):
        f = np.stack([(2 * x + 10 * t) % 256, (3 * y + 20) % 256,
                      np.full_like(x, (40 * t + 30) % 256)], axis=-1)
        out.append(f.astype(np.uint8))
    return out


def save_pngs(folder: Path, frames: list[np.ndarray], names: list[str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / (names[t] if names else f"{t:05d}.png"))


def write_mp4(path: Path, frames: list[np.ndarray], faststart: bool = False) -> None:
    """Reference mp4 written with PyAV directly (faststart puts the index before the data)."""
    c = av.open(str(path), "w", format="mp4",
                options={"movflags": "faststart"} if faststart else {})
    s = c.add_stream("libx264", rate=Fraction(24))
    s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
