"""Optimizer parameter groups (per-module lr multipliers, no decay on norms/biases) and EMA."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from tubelet.errors import InputError

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def _no_decay_names(model: nn.Module) -> set[str]:
    """Names of biases, of every normalisation layer's parameters, and of the parameters a module
    lists in its ``no_weight_decay`` attribute (a set of its own parameter names, e.g. learnable
    loss-balancing weights)."""
    names = set()
    for mod_name, mod in model.named_modules():
        extra = set(getattr(mod, "no_weight_decay", ()))
        for p_name, _ in mod.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if isinstance(mod, _NORMS) or p_name == "bias" or p_name in extra:
                names.add(full)
    return names


def lr_multiplier(name: str, lr_mults: dict[str, float]) -> float:
    """The multiplier of parameter ``name``: the entry whose key names a module on its path
    (``"backbone"`` matches ``segmenter.backbone.body.0.weight``); the longest key wins; 1.0
    if none matches."""
    parts = name.split(".")
    best, best_len = 1.0, -1
    for key, mult in lr_mults.items():
        k = key.split(".")
        for i in range(len(parts) - len(k) + 1):
            if parts[i:i + len(k)] == k and len(k) > best_len:
                best, best_len = float(mult), len(k)
    return best


def param_groups(model: nn.Module, lr: float, weight_decay: float, lr_mults: dict[str, float],
                 decay_norm_bias: bool = False) -> list[dict]:
    """Trainable parameters grouped by (lr multiplier, decay); each group carries ``lr_mult``
    so schedules scale every group from its own base."""
    no_decay = set() if decay_norm_bias else _no_decay_names(model)
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (lr_multiplier(name, lr_mults), name not in no_decay)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": lr * m, "lr_mult": m, "weight_decay": weight_decay if d else 0.0}
            for (m, d), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))]


def build_optimizer(model: nn.Module, t) -> torch.optim.Optimizer:
    """AdamW or SGD over :func:`param_groups` of ``t`` (a TrainConfig)."""
    mults = {"backbone": t.backbone_lr_mult, **t.lr_mults}
    groups = param_groups(model, t.lr, t.weight_decay, mults, t.decay_norm_bias)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    raise InputError(f"unknown optimizer {t.optimizer!r} (adamw or sgd)", field="train.optimizer")


class ModelEMA:
    """Exponential moving average of a model's weights (and a copy of its buffers).

    After each optimizer step: ``ema = d * ema + (1 - d) * w`` with
    ``d = decay * (1 - exp(-updates / tau))`` — the ramp keeps early averages from being
    dominated by the random init (``tau = 0``: constant ``decay``). Used for evaluation and saved
    in checkpoints beside the raw weights (``"ema"``); predict loads the EMA weights when present.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    def current_decay(self) -> float:
        if self.tau <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1.0 - d)
            else:
                v.copy_(src[k])

    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
