"""Training clips from a YouTube-VIS-format dataset, decoded lazily.

``ClipDataset[i]`` samples T frames of one video (in temporal order, random gaps), reads only those
JPEGs, decodes only those frames' masks, applies one augmentation draw to the whole clip and returns::

    {"images": uint8 [T, 3, H, W],
     "targets": T dicts {"masks": bool [M, H, W], "boxes": float [M, 4] (x1, y1, x2, y2),
                         "labels": int64 [M] (0-based contiguous class index),
                         "ids": int64 [M] (clip-level identity, shared across the T frames),
                         "first": bool [M] (True in the frame where the identity first appears in
                                            the clip — IAI's "new" target)},
     "video_id": int, "frames": list[int]}

Only instances visible in a frame appear in that frame's target (M varies per frame).
With ``ClipConfig.pseudo.prob`` > 0 a clip is, with that probability, a pseudo video: one
annotated frame read once, every later frame a random affine warp of it
(:func:`~tubelet.data.transforms.pseudo_video`; ``frames`` repeats the frame index).
Sampling is a pure function of (seed, epoch, index), so any worker layout and a resumed run
draw the same clips: call :meth:`ClipDataset.set_epoch` at each epoch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tubelet.data.transforms import (ClipAugConfig, PseudoVideoConfig, apply_clip_aug,
                                     masks_to_boxes, pseudo_video)
from tubelet.data.ytvis import YTVISDataset, load_ytvis
from tubelet.errors import InputError
from tubelet.structures.rle import decode


@dataclass
class ClipConfig:
    num_frames: int = 2                 # T frames per clip
    gap_range: tuple[int, int] = (1, 3) # gap between consecutive sampled frames, inclusive range
    samples_per_video: int = 1          # dataset length = videos x this
    min_visible: int = 1                # resample (a few tries) clips with fewer visible instances
    aug: ClipAugConfig = field(default_factory=ClipAugConfig)
    pseudo: PseudoVideoConfig = field(default_factory=PseudoVideoConfig)  # single-frame clips


def check_clip_config(c: ClipConfig, where: str = "config") -> None:
    """Refuse clip settings that would silently train on something else (issue 13:
    ``clip.num_frames=0`` trained on 1-frame clips)."""
    if c.num_frames < 1:
        raise InputError(f"must be >= 1, got {c.num_frames}", where, field="data.clip.num_frames")
    lo, hi = c.gap_range
    if not 1 <= lo <= hi:
        raise InputError(f"expected 1 <= low <= high, got {list(c.gap_range)}", where,
                         field="data.clip.gap_range")
    if c.samples_per_video < 1:
        raise InputError(f"must be >= 1, got {c.samples_per_video}", where,
                         field="data.clip.samples_per_video")
    if c.min_visible < 0:
        raise InputError(f"must be >= 0, got {c.min_visible}", where, field="data.clip.min_visible")
    p = c.pseudo
    for name, value, ok in (("prob", p.prob, 0 <= p.prob <= 1),
                            ("max_rotation", p.max_rotation, 0 <= p.max_rotation <= 180),
                            ("max_scale", p.max_scale, 0 <= p.max_scale < 1),
                            ("max_shift", p.max_shift, 0 <= p.max_shift <= 1)):
        if not ok:  # also refuses NaN
            raise InputError(f"out of range, got {value}", where, field=f"data.clip.pseudo.{name}")


def category_index(gt: YTVISDataset) -> dict[int, int]:
    """Dataset category id -> contiguous 0-based class index (sorted by id)."""
    return {cid: i for i, cid in enumerate(sorted(gt.categories))}


def sample_frames(length: int, num_frames: int, gap_range: tuple[int, int],
                  rng: np.random.Generator) -> list[int]:
    """T frame indices in increasing order with gaps drawn from ``gap_range``; a video shorter
    than the span shrinks the gaps, and one shorter than T repeats its last frame."""
    lo, hi = gap_range
    gaps = rng.integers(lo, hi + 1, size=max(num_frames - 1, 0))
    while gaps.sum() > length - 1 and gaps.max() > 1:
        gaps[np.argmax(gaps)] -= 1
    span = int(gaps.sum())
    if span > length - 1:  # even gaps of 1 do not fit: clamp (repeats the last frame)
        idx = np.minimum(np.concatenate([[0], np.cumsum(gaps)]), length - 1)
        return idx.astype(int).tolist()
    start = int(rng.integers(0, length - span))
    return (start + np.concatenate([[0], np.cumsum(gaps)])).astype(int).tolist()


def read_image(path: Path) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]``; a missing or corrupt file raises InputError naming it."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InputError("frame file not found", str(path)) from None
    except Exception as exc:
        raise InputError(f"cannot decode image: {exc}", str(path)) from None


class ClipDataset(torch.utils.data.Dataset):
    """Clips of T frames for training (see module docstring for the sample format)."""

    def __init__(self, gt: YTVISDataset | str | os.PathLike, image_root: str | os.PathLike,
                 cfg: ClipConfig | None = None, train: bool = True, seed: int = 0):
        self.gt = gt if isinstance(gt, YTVISDataset) else load_ytvis(gt)
        self.image_root = Path(image_root)
        if not self.image_root.is_dir():
            raise InputError("image folder not found", str(self.image_root))
        self.cfg = cfg or ClipConfig()
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.video_ids = sorted(self.gt.videos)
        self.cat_index = category_index(self.gt)
        if not self.video_ids:
            raise InputError("dataset has no videos", self.gt.path)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.video_ids) * self.cfg.samples_per_video

    def _draw(self, idx: int, rng: np.random.Generator, pseudo: bool = False):
        """The clip's video, its annotations, T frame indices and how many instances they show;
        a pseudo video draws one frame and repeats it T times (warped later)."""
        video = self.gt.videos[self.video_ids[idx % len(self.video_ids)]]
        anns = [a for a in self.gt.annotations_of(video.id) if not a.iscrowd]
        if pseudo:
            frames = [int(rng.integers(0, video.length))] * self.cfg.num_frames
        else:
            frames = sample_frames(video.length, self.cfg.num_frames, self.cfg.gap_range, rng)
        visible = sum(any(a.segmentations[t] is not None for t in frames) for a in anns)
        return video, anns, frames, visible

    def __getitem__(self, idx: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, idx))
        pseudo = self.train and self.cfg.pseudo.prob > 0 and rng.random() < self.cfg.pseudo.prob
        video, anns, frames, visible = self._draw(idx, rng, pseudo)
        for _ in range(4):  # a few tries for a clip showing enough instances
            if visible >= self.cfg.min_visible:
                break
            video, anns, frames, visible = self._draw(idx, rng, pseudo)
        read = frames[:1] if pseudo else frames  # a pseudo video decodes its one frame once
        imgs = []
        for t in read:
            fname = video.file_names[t] if video.file_names else f"{video.name}/{t:05d}.jpg"
            img = read_image(self.image_root / fname)
            if img.shape[:2] != (video.height, video.width):
                raise InputError(f"frame size {img.shape[0]}x{img.shape[1]} differs from video "
                                 f"size {video.height}x{video.width}", str(self.image_root / fname))
            imgs.append(img)
        images = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()  # [T, 3, H, W]
        m = len(anns)
        masks = np.zeros((len(read), m, video.height, video.width), dtype=bool)
        for j, a in enumerate(anns):
            for k, t in enumerate(read):
                if a.segmentations[t] is not None:
                    masks[k, j] = decode(a.segmentations[t]).astype(bool)
        masks_t = torch.from_numpy(masks)
        if pseudo:  # frames 1.. are random affine warps of frame 0 (before the clip's aug)
            images, masks_t = pseudo_video(images[0], masks_t[0], len(frames), self.cfg.pseudo,
                                           rng)
        images, masks_t = apply_clip_aug(images, masks_t, self.cfg.aug, rng, self.train)
        labels = torch.tensor([self.cat_index[a.category_id] for a in anns], dtype=torch.int64)
        targets, seen = [], torch.zeros(m, dtype=torch.bool)
        for k in range(len(frames)):
            vis = masks_t[k].flatten(1).any(dim=1) if m else torch.zeros(0, dtype=torch.bool)
            first = vis & ~seen
            seen |= vis
            targets.append({"masks": masks_t[k][vis], "boxes": masks_to_boxes(masks_t[k][vis]),
                            "labels": labels[vis], "ids": torch.nonzero(vis).flatten(),
                            "first": first[vis]})
        return {"images": images, "targets": targets, "video_id": video.id, "frames": frames}


def collate_clips(batch: list[dict]) -> dict:
    """Pad clips to one size: ``images uint8 [B, T, 3, Hmax, Wmax]`` (zeros to the right/bottom),
    masks padded the same way; ``image_sizes`` holds each clip's (H, W) before padding."""
    hmax = max(b["images"].shape[-2] for b in batch)
    wmax = max(b["images"].shape[-1] for b in batch)
    t = batch[0]["images"].shape[0]
    images = torch.zeros((len(batch), t, 3, hmax, wmax), dtype=torch.uint8)
    targets, sizes = [], []
    for i, b in enumerate(batch):
        h, w = b["images"].shape[-2:]
        images[i, :, :, :h, :w] = b["images"]
        sizes.append((h, w))
        clip_t = []
        for tg in b["targets"]:
            pm = torch.zeros((tg["masks"].shape[0], hmax, wmax), dtype=torch.bool)
            pm[:, :h, :w] = tg["masks"]
            clip_t.append({**tg, "masks": pm})
        targets.append(clip_t)
    return {"images": images, "targets": targets, "image_sizes": sizes,
            "video_ids": [b["video_id"] for b in batch], "frames": [b["frames"] for b in batch]}
