"""The interface every VIS method implements, and its streaming prediction result.

Training (driven by :mod:`tubelet.engine.trainer`)::

    dataset = method.train_dataset(gt, image_root, data_cfg, seed)   # default: ClipDataset
    batch = method.collate(samples)                                  # default: collate_clips
    out = method(method.batch_to(batch, device))                     # dict of scalar tensors
    loss = sum(v for k, v in out.items() if k.startswith("loss"))    # the rest is logged only

Inference: one streaming call for every method, so the CLI and evaluator never branch::

    stream = method.predict_video(video)       # a VideoSource (len, fps, size, video[t], iter)
    for fr in stream:                          # FrameOutput per frame, as soon as it is known
        ...
    video = stream.result()                    # VideoInstances (tracks of the whole video)

Online methods (:class:`~tubelet.methods.track_by_detect.TrackByDetect`) iterate the video and
emit each frame's result at once, holding memory that does not grow with the video. Offline
methods index it (``video[t]``, decoded on demand through the source's bounded cache) and may
emit frame results at the end; they keep results as RLE, never decoded frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Iterator

import numpy as np
import torch
from torch import nn

from tubelet.structures import VideoInstances
from tubelet.video import VideoSource, as_video

#: forward() outputs whose key starts with this are summed into the training loss; every other
#: entry is a logging-only value (detached by the trainer, never back-propagated).
LOSS_PREFIX = "loss"


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


def split_losses(out: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """``forward`` output -> (loss terms to sum, logging-only values as floats)."""
    losses = {k: v for k, v in out.items() if k.startswith(LOSS_PREFIX)}
    logs = {k: float(v.detach()) if torch.is_tensor(v) else float(v)
            for k, v in out.items() if not k.startswith(LOSS_PREFIX)}
    return losses, logs


class VISMethod(nn.Module):
    """Base class: subclasses set ``self.categories`` and implement ``forward`` / ``_predict``."""

    #: (dataset category id, name) in class-index order; results use these ids.
    categories: list[tuple[int, str]]
    #: feed images as NHWC (set by :meth:`fuse_for_inference`)
    channels_last: bool = False
    #: "online" (iterates the video, memory flat in its length) or "offline" (random access)
    paradigm: str = "online"

    def set_categories(self, categories: list[tuple[int, str]]) -> None:
        self.categories = [(int(c), str(n)) for c, n in categories]

    @property
    def category_ids(self) -> np.ndarray:
        return np.array([c for c, _ in self.categories], dtype=np.int64)

    # ------------------------------------------------------------------------- training hooks
    def train_dataset(self, gt, image_root: str, data_cfg, seed: int) -> torch.utils.data.Dataset:
        """The training dataset (default: clips of ``data_cfg.clip``). A dataset may define
        ``set_epoch(epoch)``; sampling must be a pure function of (seed, epoch, index) so a
        resumed run draws what the uninterrupted one would."""
        from tubelet.data.clips import ClipDataset
        return ClipDataset(gt, image_root, data_cfg.clip, train=True, seed=seed)

    def train_sampler(self, dataset, num_replicas: int, rank: int, seed: int):
        """The sampler (default: a shuffling DistributedSampler; must have ``set_epoch``)."""
        from torch.utils.data import DistributedSampler
        return DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                                  seed=seed, drop_last=True)

    @staticmethod
    def collate(samples: list[dict]) -> dict:
        """Batch samples of :meth:`train_dataset` (default: :func:`collate_clips`)."""
        from tubelet.data.clips import collate_clips
        return collate_clips(samples)

    @staticmethod
    def batch_to(batch: dict, device: torch.device) -> dict:
        """Move a collated batch to ``device`` (default: the clip batch layout)."""
        if device.type == "cpu":
            return batch
        out = dict(batch)
        out["images"] = batch["images"].to(device, non_blocking=True)
        out["targets"] = [[{k: v.to(device) for k, v in tg.items()} for tg in clip]
                          for clip in batch["targets"]]
        return out

    @staticmethod
    def batch_images(batch: dict) -> int:
        """Images in a batch (for the images/s figure): B clips x T frames by default."""
        return int(batch["images"].shape[0] * batch["images"].shape[1])

    # ------------------------------------------------------------------------------ inference
    def fuse_for_inference(self, channels_last: bool = True) -> int:
        """Fold every inference-mode BatchNorm into its convolution and (``channels_last``) store
        conv weights NHWC, which oneDNN runs faster on a CPU (subclasses feed NHWC images when
        ``self.channels_last``). Measured with bench/predict_speed.py: together about 1.8x the
        frames/s of the plain eval-mode model on 2 cores.

        One-way: the fused module no longer loads or saves training checkpoints and refuses
        ``train()``. :func:`tubelet.engine.loading.load_method` calls it after loading.
        Returns the number of fused pairs.
        """
        from tubelet.models.fuse import fuse_conv_bn
        self.eval()
        n = fuse_conv_bn(self)
        for m in list(self.modules()):  # module-level inference rewrites (FCOS towers)
            if m is not self and hasattr(m, "fuse_for_inference"):
                m.fuse_for_inference()
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

    def predict_video(self, video: Any) -> VideoStream:
        """Stream predictions over ``video``: a :class:`~tubelet.video.VideoSource`, a path, a
        list / ``[T, H, W, 3]`` array of RGB uint8 frames, or (online methods only) any
        iterable of frames."""
        return VideoStream(self._predict(as_video(video)))

    def _predict(self, video: VideoSource) -> Generator[FrameOutput, None, VideoInstances]:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
