"""Experiment configuration: method config + data + training schedule, from YAML + overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tubelet.data.clips import ClipConfig, check_clip_config
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
    lr_mults: dict[str, float] = field(default_factory=dict)  # more per-module multipliers:
    #                               module name on the parameter path -> lr factor (longest wins)
    weight_decay: float = 1e-4
    decay_norm_bias: bool = False # False: no weight decay on norm layers and biases
    momentum: float = 0.9         # SGD only
    batch_size: int = 2           # samples per process per micro-batch
    accum_steps: int = 1          # micro-batches per optimizer step (gradient accumulation)
    max_iters: int = 1000         # optimizer steps
    schedule: str = "multistep"   # "multistep" (milestones, gamma) | "cosine" (to min_lr_factor)
    warmup_iters: int = 100       # linear warm-up length
    warmup_factor: float = 0.001  # lr multiplier at step 0 of the warm-up
    milestones: tuple[int, ...] = (800,)  # multistep: steps where lr *= gamma
    gamma: float = 0.1
    min_lr_factor: float = 0.0    # cosine: lr factor reached at max_iters
    grad_clip: float = 0.0        # max global grad norm (0 = off)
    ema: bool = False             # keep an EMA of the weights (evaluated and exported when on)
    ema_decay: float = 0.9999     # EMA decay d
    ema_tau: float = 2000.0       # EMA ramp: d * (1 - exp(-updates / tau)); 0 = no ramp
    amp: bool | None = None       # autocast; None = bf16 when a CUDA GPU is present, off on CPU
    seed: int = 0
    num_workers: int = 0          # DataLoader workers per process
    log_every: int = 10           # CSV/TensorBoard log period (steps)
    eval_every: int = 0           # periodic validation period (0 = only at the end if val_json)
    ckpt_every: int = 200         # checkpoint period (steps); a checkpoint is always written at the end
    device: str = "auto"          # "auto" | "cpu" | "cuda"
    deterministic: bool = False   # bit-identical reruns and resumes: deterministic kernels and
    #                               1 CPU thread (engine/determinism.py; cost: README, training)
    init_weights: str | None = None  # start from these model weights (a checkpoint or an
    #                               exported file of the same architecture, loaded strictly; step 0
    #                               and a fresh optimizer: fine-tuning, not a resume)
    init_missing_ok: tuple[str, ...] = ()  # parameter-name prefixes init_weights may lack: those
    #                               modules keep their fresh init (a model grown by an option,
    #                               e.g. ["prop.prior."] for propose-reduce's prior_mask)


def check_experiment(cfg: "ExperimentConfig", where: str = "config") -> None:
    """Refuse training and data values that would fail or silently misbehave later."""
    check_train_config(cfg.train, where)
    check_clip_config(cfg.data.clip, where)
    if cfg.data.val_max_videos < 0:
        raise InputError(f"must be >= 0, got {cfg.data.val_max_videos}", where,
                         field="data.val_max_videos")


def check_train_config(t: TrainConfig, where: str = "config") -> None:
    """Refuse values that would fail (or silently misbehave) later, before any work starts."""
    from tubelet.engine.schedule import SCHEDULES
    positive = ("batch_size", "accum_steps", "log_every", "ckpt_every")
    for name in positive:
        if getattr(t, name) < 1:
            raise InputError(f"must be >= 1, got {getattr(t, name)}", where, field=f"train.{name}")
    for name in ("max_iters", "warmup_iters", "eval_every", "num_workers"):
        if getattr(t, name) < 0:
            raise InputError(f"must be >= 0, got {getattr(t, name)}", where, field=f"train.{name}")
    if t.schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {t.schedule!r}; choices: {list(SCHEDULES)}", where,
                         field="train.schedule")
    if t.optimizer not in ("adamw", "sgd"):
        raise InputError(f"unknown optimizer {t.optimizer!r}; choices: ['adamw', 'sgd']", where,
                         field="train.optimizer")
    if t.device not in ("auto", "cpu", "cuda") and not t.device.startswith("cuda:"):
        raise InputError(f"unknown device {t.device!r}; choices: auto, cpu, cuda[:N]", where,
                         field="train.device")
    if not 0.0 <= t.ema_decay < 1.0:
        raise InputError(f"must be in [0, 1), got {t.ema_decay}", where, field="train.ema_decay")
    if not t.lr > 0:
        raise InputError(f"must be > 0, got {t.lr}", where, field="train.lr")


@dataclass
class ExperimentConfig:
    method: str
    model: Any                    # the method's own dataclass config
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def experiment_from_dict(d: dict, where: str = "config") -> ExperimentConfig:
    from tubelet.methods import get_method
    if not isinstance(d, dict) or "method" not in d:
        raise InputError("missing key", where, None, "method")
    unknown = sorted(set(d) - {"method", "model", "data", "train"})
    if unknown:
        raise InputError(f"unknown top-level key(s) {unknown}", where)
    try:
        spec = get_method(d["method"])
    except InputError as exc:
        raise InputError(exc.message, where, field="method") from None
    cfg = ExperimentConfig(method=d["method"],
                           model=from_dict(spec.config_cls, d.get("model") or {}, f"{where}: model"),
                           data=from_dict(DataConfig, d.get("data") or {}, f"{where}: data"),
                           train=from_dict(TrainConfig, d.get("train") or {}, f"{where}: train"))
    check_experiment(cfg, where)
    return cfg


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
    if overrides:
        cfg = apply_overrides(cfg, list(overrides), "command line")
        check_experiment(cfg, "command line")
    return cfg


def experiment_to_dict(cfg: ExperimentConfig) -> dict:
    return to_dict(cfg)
