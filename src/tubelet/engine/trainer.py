"""The training loop: one process or many under ``torchrun`` (DDP).

Exact resume: clip sampling is a pure function of (seed, epoch, index), the sampler order a pure
function of (seed, epoch), and the checkpoint holds model, optimizer, scheduler, scaler, step and
every RNG state (Python, NumPy, torch CPU / CUDA, and the DataLoader seed of the current epoch);
a resumed run skips the micro-batches already consumed in the current epoch and then draws
exactly what the uninterrupted run would have drawn. Bit-identical (also with ``accum_steps`` >
1) under ``train.deterministic`` (engine/determinism.py); otherwise as far as the CPU threads
allow.
"""
from __future__ import annotations

import csv
import json
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from tubelet.data.ytvis import load_ytvis
from tubelet.engine import dist
from tubelet.engine.checkpoint import (load_checkpoint, load_model_weights, rng_state,
                                      save_checkpoint, set_rng_state)
from tubelet.engine.config import ExperimentConfig, experiment_to_dict
from tubelet.engine.optim import ModelEMA, build_optimizer
from tubelet.engine.schedule import lr_factor
from tubelet.engine.determinism import deterministic_mode
from tubelet.engine.stop import GracefulStop
from tubelet.errors import InputError
from tubelet.methods import build_method
from tubelet.methods.base import split_losses
from tubelet.utils.fileio import check_output_dir, remove_stale_temps, write_json


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checksum(model: torch.nn.Module) -> float:
    """A float fingerprint of all parameters (to compare DDP replicas)."""
    with torch.no_grad():
        return float(sum((p.double() * (i + 1)).sum() for i, p in enumerate(model.parameters())))


class _Logger:
    """CSV (always) and TensorBoard (if installed) scalars; rank 0 only."""

    def __init__(self, out_dir: Path, enabled: bool, append: bool, upto_step: int = 0):
        self.enabled = enabled
        self.path = out_dir / "metrics.csv"
        self.fields: list[str] | None = None
        self.tb = None
        if not enabled:
            return
        if append and self.path.exists():
            # a resumed run continues from its checkpoint: drop the rows logged after it, which
            # the resumed run logs again
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
            self.fields = rows[0] if rows else None
            kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= upto_step]
            if len(kept) != len(rows):
                from tubelet.utils.fileio import atomic_path
                with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
                    csv.writer(f).writerows(kept)
        elif self.path.exists():
            self.path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out_dir / "tb"))
        except Exception:  # tensorboard not installed
            self.tb = None

    def log(self, step: int, row: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, **row}
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)


def _amp_context(t, device: torch.device):
    """(autocast context, GradScaler): bf16 autocast on a CUDA GPU by default (``amp=None``); an
    explicit ``amp=True`` uses bf16 on the CPU and fp16 + GradScaler on a GPU without bf16."""
    on = (device.type == "cuda") if t.amp is None else bool(t.amp)
    if not on:
        return nullcontext, torch.amp.GradScaler("cuda", enabled=False)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return (lambda: torch.autocast("cuda", dtype=torch.float16),
                torch.amp.GradScaler("cuda", enabled=True))
    return (lambda: torch.autocast(device.type, dtype=torch.bfloat16),
            torch.amp.GradScaler("cuda", enabled=False))


def train(cfg: ExperimentConfig, out_dir: str | Path, resume: bool = False,
          progress: bool = True, stop_after: int | None = None) -> dict:
    """Train ``cfg``; write checkpoints and logs to ``out_dir``; return a summary dict with the
    per-step loss history (``losses``, the summed loss of each optimizer step).

    ``stop_after``: write a checkpoint and stop once this many steps are done (the schedule
    still spans ``train.max_iters``; ``resume=True`` continues exactly). With
    ``train.deterministic`` the process runs deterministic kernels on one CPU thread until this
    returns (then its previous settings are back)."""
    with deterministic_mode(cfg.train.deterministic):
        return _train(cfg, out_dir, resume, progress, stop_after)


def _train(cfg: ExperimentConfig, out_dir, resume: bool, progress: bool,
           stop_after: int | None) -> dict:
    out_dir = check_output_dir(out_dir)  # a file, a path through one, unwritable: refused now
    device = dist.pick_device(cfg.train.device)
    rank, world = dist.init_from_env(device)
    main = rank == 0
    t = cfg.train
    seed_all(t.seed)  # identical init on every rank (DDP also broadcasts rank 0's weights)

    if not cfg.data.train_json:
        raise InputError("no training data: set data.train_json and data.train_images",
                         field="data.train_json")
    gt = load_ytvis(cfg.data.train_json)
    model = build_method(cfg.method, cfg.model)
    model.set_categories(sorted(gt.categories.items()))
    if t.init_weights and not resume:  # a resume loads its own checkpoint instead
        load_model_weights(model, t.init_weights, t.init_missing_ok)
    model.to(device)
    dataset = model.train_dataset(gt, cfg.data.train_images, cfg.data, t.seed)
    sampler = model.train_sampler(dataset, world, rank, t.seed)
    # the loader's own generator, seeded per epoch below: iter(loader) would otherwise draw the
    # workers' base seed from the global torch RNG each time, once more on a mid-epoch resume
    loader_rng = torch.Generator()
    loader = DataLoader(dataset, batch_size=t.batch_size, sampler=sampler, drop_last=True,
                        num_workers=t.num_workers, collate_fn=model.collate, generator=loader_rng)
    if len(loader) == 0:
        raise InputError(f"{len(dataset)} samples cannot fill one batch of {t.batch_size} x "
                         f"{world} processes", cfg.data.train_json)
    optimizer = build_optimizer(model, t)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, t.warmup_iters, t.warmup_factor, t.milestones, t.gamma,
                                       t.schedule, t.max_iters, t.min_lr_factor))
    autocast, scaler = _amp_context(t, device)
    ema = ModelEMA(model, t.ema_decay, t.ema_tau) if t.ema else None
    step, micro = 0, 0  # optimizer steps done; micro-batches consumed in total
    epoch_seed = None   # the DataLoader seed of the current epoch
    ckpt_path = out_dir / "last.pt"
    if resume:
        step, micro, epoch_seed = _resume(ckpt_path, device, rank, model, optimizer, sched,
                                          scaler, ema)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out_dir)  # a killed run's half-written checkpoint / json
        (out_dir / "summary.json").unlink(missing_ok=True)  # written last: absent = incomplete
        write_json(out_dir / "config.json", experiment_to_dict(cfg), indent=2)
    net = DDP(model) if world > 1 else model
    logger = _Logger(out_dir, main, append=resume, upto_step=step)
    per_epoch = len(loader)
    history: list[float] = []
    bar = tqdm(total=t.max_iters, initial=step, disable=not (progress and main),
               desc=f"train {cfg.method}", dynamic_ncols=True)
    t0 = time.time()
    images_seen = 0
    net.train()
    stopped_by = None
    # SIGTERM / SIGINT set a flag, checked after each optimizer step: that step finishes, a
    # checkpoint and summary.json are written, and the run ends (issue 13, item 8)
    with GracefulStop() as stopper:
        while step < t.max_iters:
            epoch, skip = divmod(micro, per_epoch)
            if skip == 0 or epoch_seed is None:
                # the draw DataLoader itself makes without a generator (so the global RNG
                # sequence, and the golden losses, are unchanged), made once per epoch and
                # checkpointed: a run resumed mid-epoch reuses it instead of drawing again
                epoch_seed = int(torch.empty((), dtype=torch.int64).random_())
            loader_rng.manual_seed(epoch_seed)  # workers: base seed from it, + worker id
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            it = iter(loader) if skip == 0 else _skip(loader, skip)
            for batch in it:
                k = micro % t.accum_steps
                sync = k == t.accum_steps - 1
                ctx = net.no_sync() if (world > 1 and not sync) else nullcontext()
                with ctx, autocast():
                    losses, logs = split_losses(net(model.batch_to(batch, device)))
                    loss = sum(losses.values())
                if not torch.isfinite(loss):
                    raise RuntimeError(f"non-finite loss at step {step}: "
                                       f"{ {k: float(v) for k, v in losses.items()} }")
                scaler.scale(loss / t.accum_steps).backward()
                micro += 1
                images_seen += model.batch_images(batch) * world
                if k == 0:
                    acc = {}
                for n, v in [*((n, float(v.detach())) for n, v in losses.items()), *logs.items()]:
                    acc[n] = acc.get(n, 0.0) + v / t.accum_steps
                if not sync:
                    continue
                if t.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                sched.step()
                if ema is not None:
                    ema.update(model)
                step += 1
                total = sum(v for n, v in acc.items() if n in losses)
                history.append(total)
                bar.update(1)
                bar.set_postfix(loss=f"{total:.3f}")
                if step % t.log_every == 0 or step == t.max_iters:
                    ips = images_seen / max(time.time() - t0, 1e-9)
                    logger.log(step, {"lr": optimizer.param_groups[0]["lr"], "loss": total, **acc,
                                      "images_per_s": ips})
                    if main and not progress:  # a long run without a bar still shows it is alive
                        print(f"step {step}/{t.max_iters} loss {total:.4f} ({ips:.2f} images/s)",
                              flush=True)
                if t.eval_every and step % t.eval_every == 0 and cfg.data.val_json:
                    _evaluate(ema.module if ema else model, cfg, logger, step, main)
                    net.train()
                if stopper.requested(world):
                    stopped_by = stopper.signal_name
                stop = step >= t.max_iters or (stop_after is not None and step >= stop_after) \
                    or stopped_by is not None
                if step % t.ckpt_every == 0 or stop:
                    _save(ckpt_path, model, optimizer, sched, scaler, ema, step, micro,
                          epoch_seed, cfg, main)
                if stop:
                    break
            if (stop_after is not None and step >= stop_after) or stopped_by is not None:
                break
    bar.close()
    summary = {"steps": step, "losses": history, "seconds": time.time() - t0,
               "stopped_by": stopped_by,
               "images_per_s": images_seen / max(time.time() - t0, 1e-9),
               "checksums": dist.all_gather_object(checksum(model))}
    # a stop signal means "exit now": the checkpoint is written, the final validation is skipped
    if cfg.data.val_json and not t.eval_every and stopped_by is None:
        summary["eval"] = _evaluate(ema.module if ema else model, cfg, logger, step, main)
    if main:
        write_json(out_dir / "summary.json", {k: v for k, v in summary.items()}, indent=1)
    dist.barrier()
    return summary


def _resume(path, device, rank, model, optimizer, sched, scaler,
            ema) -> tuple[int, int, int | None]:
    """Load every state of ``path`` into the training objects; return (step, micro, DataLoader
    seed of the current epoch; None from a checkpoint written before it was stored)."""
    ck = load_checkpoint(path, map_location=device)
    try:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        if ema is not None:
            if "ema" not in ck:
                raise KeyError("ema (the run was started with train.ema=false)")
            ema.load_state_dict(ck["ema"])
        step, micro = int(ck["step"]), int(ck["micro"])
        rng = ck["rng"][rank] if isinstance(ck["rng"], list) else ck["rng"]
        set_rng_state(rng)
        epoch_seed = rng.get("loader")
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise InputError(f"cannot resume from this checkpoint (another config or method?): "
                         f"{str(exc)[:300]}", str(path)) from None
    return step, micro, None if epoch_seed is None else int(epoch_seed)


def _skip(loader, n: int):
    """An iterator over ``loader`` past its first ``n`` batches, which are loaded again: the
    sampling is pure, and any RNG the loading draws from in this process (augmentation with the
    global RNGs, num_workers = 0) is put back, since the checkpointed state already holds those
    draws (workers are re-seeded from the epoch's DataLoader seed and replay theirs)."""
    state = rng_state()
    it = iter(loader)
    for _ in range(n):
        next(it)
    set_rng_state(state)
    return it


def _save(path, model, optimizer, sched, scaler, ema, step, micro, epoch_seed, cfg,
          main) -> None:
    rngs = dist.all_gather_object({**rng_state(), "loader": epoch_seed})
    if main:
        extra = {"ema": ema.state_dict()} if ema is not None else {}
        save_checkpoint(path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=sched.state_dict(), scaler=scaler.state_dict(), step=step,
                        micro=micro, rng=rngs, meta=_meta(model, cfg), **extra)
    dist.barrier()


def _meta(model, cfg) -> dict:
    return {"method": cfg.method, "config": json.dumps(experiment_to_dict(cfg)),
            "categories": [[c, n] for c, n in model.categories]}


def _evaluate(model, cfg, logger, step, main) -> dict | None:
    from tubelet.engine.predict import evaluate_dataset
    metrics = evaluate_dataset(model, cfg.data.val_json, cfg.data.val_images,
                               max_videos=cfg.data.val_max_videos, progress=False)
    if main and metrics is not None:
        logger.log(step, {f"val_{k}": v for k, v in metrics.items() if isinstance(v, float)})
    return metrics
