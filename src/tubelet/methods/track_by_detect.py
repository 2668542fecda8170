"""The base of every online method: detect each frame, associate with a tracker, emit at once.

A subclass provides only :meth:`TrackByDetect.detect` (one normalised image in, the frame's
:class:`FrameInstances` out, with embeddings / ID probabilities where it has them) and, when its
detector depends on the tracker's decisions, :meth:`TrackByDetect.on_tracked` (IAI writes its
memory with the identities the assigner picked). The base owns resize, normalisation, the
tracker and the per-frame output loop::

    for t, frame in enumerate(video):
        inst = self.detect(self.preprocess(frame), frame.shape[:2])   # subclass
        result = tracker.update(inst)                                  # FrameResult: track ids
        self.on_tracked(t, inst, result)                               # feedback (optional)
        yield FrameOutput(...)                                         # the frame's tracked masks
    return tracker.finalize()                                          # VideoInstances

The tracker is chosen by ``cfg.tracker`` and checked when the model is built: an unknown name,
or a tracker the detector cannot feed (memory without embeddings, iai without ID
probabilities), is an :class:`~tubelet.errors.InputError` listing the choices.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generator

import numpy as np
import torch
import torch.nn.functional as F

from tubelet.errors import InputError
from tubelet.methods.base import FrameOutput, VISMethod
from tubelet.structures import FrameInstances, VideoInstances
from tubelet.trackers import (FrameResult, GreedyConfig, IAIConfig, MemoryConfig, NaiveConfig,
                              Tracker, build_tracker, check_tracker)
from tubelet.video import VideoSource


@dataclass
class OnlineConfig:
    """What every online method's config holds (method configs subclass it)."""
    tracker: str = "greedy"          # greedy (YOLOv4+1 BF/LBF) | memory (contrastive) | iai | naive
    greedy: GreedyConfig = field(default_factory=GreedyConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    iai: IAIConfig = field(default_factory=IAIConfig)
    naive: NaiveConfig = field(default_factory=NaiveConfig)
    test_short_side: int = 192       # inference resize: shortest side
    test_max_size: int = 640         # inference resize: cap on the longest side
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet normalisation
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def resize_for_test(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """(h, w) scaled so the short side is ``short`` and the long side at most ``max_size``."""
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def normalize_images(images: torch.Tensor, mean: torch.Tensor,
                     std: torch.Tensor) -> torch.Tensor:
    """``(images - mean) / std`` as float, in the input's memory layout.

    Args:
        images: ``[B, 3, H, W]`` (uint8 or float). mean, std: ``[1, 3, 1, 1]``.

    A decoded frame (B = 1) is H x W x 3 in memory: broadcasting a 3-vector along that innermost
    3 is ~10x slower on a CPU than rows of W*3 values with the per-channel constants repeated W
    times, which give the same (x - mean) / std for every value.
    """
    x = images.float()
    if x.shape[0] == 1 and x.shape[1] == 3 and not x.is_contiguous() \
            and x.is_contiguous(memory_format=torch.channels_last):
        h, w = x.shape[-2:]
        rows = x.permute(0, 2, 3, 1).reshape(h, w * 3)  # a view: [H, W*3]
        return ((rows - mean.view(3).repeat(w)) / std.view(3).repeat(w)).view(1, h, w, 3) \
            .permute(0, 3, 1, 2)
    return (x - mean) / std


def preprocess_frame(frame: np.ndarray, short_side: int, max_size: int, mean: torch.Tensor,
                     std: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """One decoded frame -> the network input: every method's test-time preprocessing.

    Args:
        frame: RGB uint8 ``[H, W, 3]``.
        short_side, max_size: :func:`resize_for_test`'s.
        mean, std: ``[1, 3, 1, 1]`` on the model's device (0..255 scale).
        channels_last: return NHWC memory (for models fused with channels-last weights).

    Returns:
        ``[1, 3, h, w]`` float, bilinearly resized (when the size changes) and normalised.
    """
    h, w = frame.shape[:2]
    nh, nw = resize_for_test(h, w, short_side, max_size)
    img = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.uint8))
    img = img.to(mean.device).permute(2, 0, 1)[None]  # [1, 3, H, W], NHWC in memory
    if (nh, nw) != (h, w):
        img = F.interpolate(img.float(), size=(nh, nw), mode="bilinear", align_corners=False)
    img = normalize_images(img, mean, std)
    if channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
    return img


class TrackByDetect(VISMethod):
    """Online track-by-detect base. Subclasses call ``super().__init__(cfg)`` first."""

    paradigm = "online"

    def __init__(self, cfg: OnlineConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1) * 255,
                             persistent=False)
        try:
            check_tracker(cfg.tracker, self.provided_fields())
        except ValueError as exc:
            raise InputError(str(exc), field="model.tracker") from None

    # ------------------------------------------------------------------ what subclasses provide
    def provided_fields(self) -> set[str]:
        """``FrameInstances`` fields :meth:`detect` fills beyond masks/scores/labels, decided by
        ``self.cfg`` alone (it is called before the subclass builds its layers)."""
        return {"class_probs"}

    def detect(self, images: torch.Tensor, size: tuple[int, int]) -> FrameInstances:
        """One normalised image ``[1, 3, h, w]`` -> the frame's detections at ``size`` (H, W)."""
        raise NotImplementedError

    def on_tracked(self, t: int, inst: FrameInstances, result: FrameResult) -> None:
        """Called after the tracker decided frame ``t``: ``result.track_ids[i]`` is detection
        i's identity (-1 dropped). Methods whose detector depends on the identities (IAI's memory)
        write their state here. Default: nothing."""

    def reset_video(self) -> None:
        """Forget per-video state before a new video (default: nothing)."""

    # ----------------------------------------------------------------------- what the base owns
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` -> normalised float, in the input's memory layout."""
        return normalize_images(images, self.pixel_mean, self.pixel_std)

    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``[H, W, 3]`` -> resized, normalised ``[1, 3, h, w]`` on the model's device."""
        return preprocess_frame(frame, self.cfg.test_short_side, self.cfg.test_max_size,
                                self.pixel_mean, self.pixel_std, self.channels_last)

    def make_tracker(self) -> Tracker:
        name = self.cfg.tracker
        return build_tracker(name, getattr(self.cfg, name, None),
                             category_ids=self.category_ids.tolist())

    @torch.inference_mode()
    def detect_frame(self, frame: np.ndarray) -> FrameInstances:
        """One RGB uint8 frame ``[H, W, 3]`` -> FrameInstances at the frame's size."""
        return self.detect(self.preprocess(frame), frame.shape[:2])

    def tracker_gate(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """``scores [N] -> bool [N]``: the candidate detections the running video's tracker can
        use (:meth:`tubelet.trackers.Tracker.input_filter`); None outside :meth:`predict_video`.
        A :meth:`detect` may skip the masks of the others: the results do not change."""
        tracker = self._tracker
        if tracker is None:
            return None

        def keep(scores: torch.Tensor) -> torch.Tensor:
            k = tracker.input_filter(scores.detach().float().cpu().numpy())
            return torch.from_numpy(np.asarray(k, dtype=bool)).to(scores.device)
        return keep

    _tracker: Tracker | None = None

    def _predict(self, video: VideoSource) -> Generator[FrameOutput, None, VideoInstances]:
        self.eval()
        tracker = self.make_tracker()
        tracker.reset()
        self.reset_video()
        seen = False
        for t, frame in enumerate(video):
            seen = True
            self._tracker = tracker
            try:
                inst = self.detect_frame(frame)
            finally:
                self._tracker = None  # a paused stream must not leak its gate into detect_frame
            res = tracker.update(inst)
            self.on_tracked(t, inst, res)
            keep = res.track_ids >= 0
            # the tracker encoded these masks already (FrameInstances.rles caches); own copies
            rles = [dict(r) for r in inst.rles(np.nonzero(keep)[0])]
            yield FrameOutput(t, rles, res.track_ids[keep],
                              inst.scores[keep], inst.labels[keep])
        if not seen:
            raise InputError("the video has no frames", getattr(video, "path", None))
        return tracker.finalize()
