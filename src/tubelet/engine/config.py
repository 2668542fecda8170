"""Experiment configuration: method config + data + training schedule, from YAML + overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tubelet.data.clips import ClipConfig
from tubelet.errors import InputError
from tubelet.utils.config import apply_overrides, from_dict, to_dict
from tubelet.utils.fileio import read_yaml


@dataclass
class DataConfig:
    train_json: str = ""          # YouTube-VIS GT of the training split
    train_images: str = ""        # its JPEGImages folder
    val_json: str = ""            # GT of the validation split ("" = no periodic evaluation)
    val_images: str = ""          # its JPEGImages folder
    val_max_videos: int = 0       # evaluate on at most this many videos (0 = all)
    clip: ClipConfig = field(default_factory=ClipConfig)


@dataclass
class TrainConfig:
    optimizer: str = "adamw"      # "adamw" | "sgd"
    lr: float = 1e-4              # base learning rate (per effective batch)
    backbone_lr_mult: float = 0.1 # backbone lr = lr x this (IAI and IDOL recipes use 0.1)
    weight_decay: float = 1e-4
    momentum: float = 0.9         # SGD only
    batch_size: int = 2           # clips per process per micro-batch
    accum_steps: int = 1          # micro-batches per optimizer step (gradient accumulation)
    max_iters: int = 1000         # optimizer steps
    warmup_iters: int = 100       # linear warm-up length
    warmup_factor: float = 0.001  # lr multiplier at step 0 of the warm-up
    milestones: tuple[int, ...] = (800,)  # steps where lr *= gamma
    gamma: float = 0.1
    grad_clip: float = 0.0        # max global grad norm (0 = off)
    amp: bool = False             # autocast (bf16 on CPU, fp16 + GradScaler on CUDA)
    seed: int = 0
    num_workers: int = 0          # DataLoader workers per process
    log_every: int = 10           # CSV/TensorBoard log period (steps)
    eval_every: int = 0           # periodic validation period (0 = only at the end if val_json)
    ckpt_every: int = 200         # checkpoint period (steps); a checkpoint is always written at the end
    device: str = "auto"          # "auto" | "cpu" | "cuda"


@dataclass
class ExperimentConfig:
    method: str
    model: Any                    # the method's own dataclass config
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def experiment_from_dict(d: dict, where: str = "config") -> ExperimentConfig:
    from tubelet.engine.registry import get_method
    if not isinstance(d, dict) or "method" not in d:
        raise InputError("missing key", where, None, "method")
    unknown = sorted(set(d) - {"method", "model", "data", "train"})
    if unknown:
        raise InputError(f"unknown top-level key(s) {unknown}", where)
    spec = get_method(d["method"])
    return ExperimentConfig(method=d["method"],
                            model=from_dict(spec.config_cls, d.get("model") or {}, f"{where}: model"),
                            data=from_dict(DataConfig, d.get("data") or {}, f"{where}: data"),
                            train=from_dict(TrainConfig, d.get("train") or {}, f"{where}: train"))


def resolve_config_path(name: str) -> Path:
    """A config path, or the name of a preset under ``configs/`` (repo) / package configs."""
    p = Path(name)
    if p.exists():
        return p
    here = Path(__file__).resolve()
    for base in (here.parents[3] / "configs", here.parents[1] / "configs"):
        for cand in (base / name, base / f"{name}.yaml"):
            if cand.exists():
                return cand
    raise InputError("config file not found (neither a path nor a preset in configs/)", name)


def load_experiment(path: str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    p = resolve_config_path(path)
    cfg = experiment_from_dict(read_yaml(p), str(p))
    return apply_overrides(cfg, list(overrides), "command line") if overrides else cfg


def experiment_to_dict(cfg: ExperimentConfig) -> dict:
    return to_dict(cfg)
