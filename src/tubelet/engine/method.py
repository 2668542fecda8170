"""The interface every VIS method implements, and its streaming prediction result.

Training: ``losses = method(batch)`` with ``batch`` from :func:`tubelet.data.clips.collate_clips`.
Inference: one streaming call for every method, so the CLI and evaluator never branch::

    stream = method.predict_video(frames)      # frames: iterable of RGB uint8 [H, W, 3]
    for fr in stream:                          # FrameOutput per frame, as soon as it is known
        ...
    video = stream.result()                    # VideoInstances (tracks of the whole video)

Online methods emit each frame's result at once and hold memory that does not grow with the
video; offline methods buffer internally and may emit frame results at the end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from tubelet.structures import VideoInstances


@dataclass
class FrameOutput:
    """What a method knows about frame ``index`` when it emits it.

    masks: N compressed RLEs at the original frame size; track_ids / scores / labels: ``[N]``.
    """
    index: int
    masks: list[dict]
    track_ids: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


class VideoStream:
    """Wraps a generator that yields :class:`FrameOutput` and *returns* the VideoInstances."""

    def __init__(self, gen: Generator[FrameOutput, None, VideoInstances]):
        self._gen = gen
        self._result: VideoInstances | None = None
        self._done = False

    def __iter__(self) -> Iterator[FrameOutput]:
        while not self._done:
            try:
                yield next(self._gen)
            except StopIteration as stop:
                self._result, self._done = stop.value, True

    def result(self) -> VideoInstances:
        for _ in self:
            pass
        assert self._result is not None
        return self._result


class VISMethod(nn.Module):
    """Base class: subclasses set ``self.categories`` and implement forward / _predict."""

    #: (dataset category id, name) in class-index order; results use these ids.
    categories: list[tuple[int, str]]
    #: feed images as NHWC (set by :meth:`fuse_for_inference`)
    channels_last: bool = False

    def set_categories(self, categories: list[tuple[int, str]]) -> None:
        self.categories = [(int(c), str(n)) for c, n in categories]

    @property
    def category_ids(self) -> np.ndarray:
        return np.array([c for c, _ in self.categories], dtype=np.int64)

    def param_groups(self, lr: float, backbone_lr_mult: float, weight_decay: float) -> list[dict]:
        """Backbone parameters (names starting with ``backbone.`` anywhere) get ``lr x mult``."""
        bb, rest = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (bb if ".backbone." in f".{name}" else rest).append(p)
        groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
        if bb:
            groups.append({"params": bb, "lr": lr * backbone_lr_mult, "weight_decay": weight_decay})
        return groups

    def fuse_for_inference(self, channels_last: bool = True) -> int:
        """Fold every inference-mode BatchNorm into its convolution and (``channels_last``) store
        conv weights NHWC, which oneDNN runs faster on a CPU (subclasses feed NHWC images when
        ``self.channels_last``). Measured with bench/predict_speed.py: together about 1.8x the
        frames/s of the plain eval-mode model on 2 cores.

        One-way: the fused module no longer loads or saves training checkpoints and refuses
        ``train()``. :func:`tubelet.engine.predict_cli.load_method` calls it after loading.
        Returns the number of fused pairs.
        """
        from tubelet.models.fuse import fuse_conv_bn
        self.eval()
        n = fuse_conv_bn(self)
        self._fused = True
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        return n

    def train(self, mode: bool = True):
        if mode and getattr(self, "_fused", False):
            raise RuntimeError("this model was fused for inference (fuse_for_inference); "
                               "build it again from its checkpoint to train")
        return super().train(mode)

    def predict_video(self, frames: Iterable[np.ndarray]) -> VideoStream:
        return VideoStream(self._predict(frames))

    def _predict(self, frames: Iterable[np.ndarray]) -> Generator[FrameOutput, None, VideoInstances]:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
