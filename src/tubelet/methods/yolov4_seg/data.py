"""Training data of ``yolov4-seg``: single letterboxed frames, and k-means anchors from the GT.

The detector is per frame, so a sample is one frame (a clip of T = 1, the layout of
:mod:`tubelet.data.clips`, so the default collate and ``batch_to`` apply)::

    ClipDataset (T = 1): read the frame, decode its masks, random crop, resize the long side to S,
                         horizontal flip (one draw from (seed, epoch, index))
    -> colour jitter (brightness, contrast, saturation; its own draw from the same key)
    -> pad to S x S, centred, grey (the letterbox of YOLOv4+1seg: 416 in the paper)

Anchors (paper §3.2, "computed in advance by Kmeans"): :func:`training_box_sizes` reads every GT
box of the training set, maps it into the S x S network input by the letterbox scale of its video,
and :func:`~tubelet.models.yolov4.anchors.level_anchors` clusters them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tubelet.data.clips import ClipConfig, ClipDataset
from tubelet.data.transforms import ClipAugConfig
from tubelet.data.ytvis import YTVISDataset
from tubelet.models.yolov4.letterbox import letterbox_params
from tubelet.structures.rle import decode

#: letterbox padding, uint8 grey (Darknet pads with 0.5 of [0, 1]); inference pads with the same
PAD_VALUE = 128


@dataclass
class YOLOAugConfig:
    """Training augmentation of single frames (YOLOv4's recipe without mosaic)."""
    hflip_prob: float = 0.5       # horizontal flip probability
    crop_prob: float = 0.0        # random crop before the letterbox (a zoom-in scale jitter)
    crop_min_frac: float = 0.7    # crop side as a fraction of the frame side, at least
    brightness: float = 0.2       # pixel values x U(1 - b, 1 + b)
    contrast: float = 0.2         # blend with the mean grey by U(1 - c, 1 + c)
    saturation: float = 0.3       # blend with the grey image by U(1 - s, 1 + s)


def colour_jitter(img: torch.Tensor, cfg: YOLOAugConfig, rng: np.random.Generator) -> torch.Tensor:
    """uint8 ``[3, H, W]`` RGB -> jittered uint8 ``[3, H, W]`` (brightness, contrast, saturation,
    in that order, one factor each drawn from ``rng``; a zero strength draws nothing)."""
    x = img.float()
    if cfg.brightness > 0:
        x = x * float(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness))
    if cfg.contrast > 0:
        f = float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast))
        x = x.mean() + f * (x - x.mean())
    if cfg.saturation > 0:
        f = float(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation))
        grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]  # [1, H, W] ITU-R 601 luma
        x = grey + f * (x - grey)
    return x.round().clamp(0, 255).to(torch.uint8)


def pad_square(images: torch.Tensor, masks: torch.Tensor, size: int
               ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Centre uint8 ``[3, h, w]`` (h, w <= size) in a grey ``[3, S, S]``; bool masks ``[M, h, w]``
    -> ``[M, S, S]``. Returns (image, masks, (top, left)) — the padding of :func:`letterbox_params`."""
    _, h, w = images.shape
    top, left = (size - h) // 2, (size - w) // 2
    out = images.new_full((3, size, size), PAD_VALUE)
    out[:, top:top + h, left:left + w] = images
    m = masks.new_zeros((masks.shape[0], size, size))
    m[:, top:top + h, left:left + w] = masks
    return out, m, (top, left)


class LetterboxFrameDataset(torch.utils.data.Dataset):
    """Single training frames letterboxed to ``size`` x ``size`` (see the module docstring).

    A sample: ``{"images": uint8 [1, 3, S, S], "targets": [{"masks": bool [M, S, S],
    "boxes": [M, 4], "labels": [M], "ids": [M], "first": [M]}], "video_id", "frames"}``.
    Sampling is a pure function of (seed, epoch, index), as :class:`ClipDataset`'s.
    """

    def __init__(self, gt: YTVISDataset, image_root: str, size: int, aug: YOLOAugConfig,
                 samples_per_video: int = 1, seed: int = 0):
        self.size = size
        self.aug = aug
        # long side -> S (short_sides = max_size = S: the scale is S / max(h, w), the letterbox's)
        clip = ClipConfig(num_frames=1, samples_per_video=samples_per_video,
                          aug=ClipAugConfig(short_sides=(size,), max_size=size,
                                            hflip_prob=aug.hflip_prob, crop_prob=aug.crop_prob,
                                            crop_min_frac=aug.crop_min_frac))
        self.frames = ClipDataset(gt, image_root, clip, train=True, seed=seed)
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        self.frames.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, idx: int) -> dict:
        s = self.frames[idx]
        rng = np.random.default_rng((self.seed, self.frames.epoch, idx, 1))  # the jitter's own draw
        img = colour_jitter(s["images"][0], self.aug, rng)  # [3, h, w], long side S
        tg = s["targets"][0]
        img, masks, (top, left) = pad_square(img, tg["masks"], self.size)
        boxes = tg["boxes"] + torch.tensor([left, top, left, top], dtype=torch.float32)
        target = {**tg, "masks": masks, "boxes": boxes}
        return {**s, "images": img[None], "targets": [target]}


def training_box_sizes(gt: YTVISDataset, size: int) -> torch.Tensor:
    """``[K, 2]`` (w, h) of every non-empty GT box of ``gt`` in the letterboxed ``size`` x ``size``
    input (x the letterbox scale of its video). Uses the annotations' ``bboxes`` (x, y, w, h) and
    decodes the mask only where a box is missing."""
    out = []
    for a in gt.annotations:
        if a.iscrowd:
            continue
        v = gt.videos[a.video_id]
        sy, sx = letterbox_params((v.height, v.width), size).scale
        for t, seg in enumerate(a.segmentations):
            if seg is None:
                continue
            box = a.bboxes[t] if a.bboxes is not None and t < len(a.bboxes) else None
            if box is None:
                m = decode(seg).astype(bool)
                if not m.any():
                    continue
                ys, xs = np.nonzero(m)
                box = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            w, h = float(box[2]) * sx, float(box[3]) * sy
            if w > 0 and h > 0:
                out.append((w, h))
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 2)
