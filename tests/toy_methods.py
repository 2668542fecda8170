"""Test doubles on the method interface (registered hidden: buildable by name, never listed).

- ``toy-offline``: an offline method that reads its video *backwards by index* (``video[t]`` for
  t = T-1 .. 0) and segments the bright pixels (grey level >= ``threshold``) as one track. It
  shows that random access works through the same predict path as every method, with memory
  bounded by the video source's cache.
- ``toy-regress``: a trainable method with its own dataset, sampler and collate (the trainer
  hooks), a summed loss and a logging-only value; optionally dropout and input noise drawn from
  the global torch RNG (of the main process or of a DataLoader worker), so that exact resume
  depends on every RNG being restored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tubelet.methods import FrameOutput, VISMethod, register_method
from tubelet.structures import VideoInstances, encode


@dataclass
class ToyOfflineConfig:
    threshold: int = 128   # grey level: a pixel is foreground when its mean RGB is >= this


class ToyOffline(VISMethod):
    paradigm = "offline"

    def __init__(self, cfg: ToyOfflineConfig):
        super().__init__()
        self.cfg = cfg
        self.gain = nn.Parameter(torch.ones(1))  # something to save in a checkpoint
        self.set_categories([(1, "bright")])
        self.read_order: list[int] = []

    def forward(self, batch):
        raise NotImplementedError("toy-offline does not train")

    def _predict(self, video):
        n = len(video)
        masks: list[dict | None] = [None] * n
        self.read_order = []
        for t in range(n - 1, -1, -1):  # backwards, by index: decoded on demand
            frame = video[t]
            self.read_order.append(t)
            m = frame.mean(axis=-1) * float(self.gain.detach()) >= self.cfg.threshold  # [H, W]
            masks[t] = encode(m) if m.any() else None
        h, w = video.height, video.width
        for t in range(n):
            keep = masks[t] is not None
            yield FrameOutput(t, [masks[t]] if keep else [], np.ones(int(keep), np.int64),
                              np.ones(int(keep)), np.ones(int(keep), np.int64))
        if not any(m is not None for m in masks):
            return VideoInstances(h, w, n)
        return VideoInstances(h, w, n, [masks], [1.0], [1], [1])


@dataclass
class ToyRegressConfig:
    dim: int = 4           # input width
    samples: int = 16      # dataset length
    dropout: float = 0.0   # dropout probability in forward (global torch RNG of the trainer)
    noise: float = 0.0     # std of noise added to each sample's input, drawn from the global torch
    #                        RNG of the process that loads it (a DataLoader worker's, if any)


class _RegressData(torch.utils.data.Dataset):
    """Sample i of epoch e is a pure function of (seed, e, i): exact resume needs nothing else
    (unless ``noise`` > 0: then also the loading process's global torch RNG)."""

    def __init__(self, n: int, dim: int, seed: int, noise: float = 0.0):
        self.n, self.dim, self.seed, self.epoch, self.noise = n, dim, seed, 0, noise

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch * 1009 + i)
        x = torch.randn(self.dim, generator=g)
        if self.noise:
            x = x + self.noise * torch.randn(self.dim)
        return {"x": x, "y": x.sum(0, keepdim=True) * 0.5 + 1.0}


class ToyRegress(VISMethod):
    def __init__(self, cfg: ToyRegressConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = nn.Linear(cfg.dim, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 1)
        self.set_categories([(1, "thing")])

    def train_dataset(self, gt, image_root, data_cfg, seed):
        return _RegressData(self.cfg.samples, self.cfg.dim, seed, self.cfg.noise)

    def train_sampler(self, dataset, num_replicas, rank, seed):
        return torch.utils.data.SequentialSampler(dataset)  # no set_epoch: the trainer copes

    @staticmethod
    def collate(samples):
        return {"x": torch.stack([s["x"] for s in samples]),
                "y": torch.stack([s["y"] for s in samples])}

    @staticmethod
    def batch_to(batch, device):
        return {k: v.to(device) for k, v in batch.items()}

    @staticmethod
    def batch_images(batch):
        return int(batch["x"].shape[0])

    def forward(self, batch):
        h = torch.relu(self.norm(self.backbone(batch["x"])))  # [B, 8]
        if self.cfg.dropout:
            h = nn.functional.dropout(h, self.cfg.dropout, self.training)
        pred = self.head(h)
        err = pred - batch["y"]
        return {"loss_mse": (err ** 2).mean(), "abs_err": err.abs().mean()}


register_method("toy-offline", ToyOfflineConfig, hidden=True)(ToyOffline)
register_method("toy-regress", ToyRegressConfig, hidden=True)(ToyRegress)


def write_toy_run(tmp_path, model: str, train: str):
    """``(toy.yaml, gt.json)`` in ``tmp_path`` for a toy-regress run: ``model`` / ``train`` are the
    YAML flow mappings of those sections; the GT is any valid file (the toy draws its own
    samples)."""
    y = tmp_path / "toy.yaml"
    y.write_text(f"method: toy-regress\nmodel: {model}\ntrain: {train}\n")
    gt = tmp_path / "gt.json"
    gt.write_text('{"videos": [{"id": 1, "width": 4, "height": 4, "length": 1, "file_names": '
                  '["v/00000.jpg"]}], "categories": [{"id": 1, "name": "a"}], "annotations": []}')
    return y, gt
