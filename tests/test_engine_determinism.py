"""Deterministic training (``train.deterministic``; issue 13, item 7): two identical seeded runs,
and a run interrupted and resumed (mid-epoch, with gradient accumulation, with DataLoader
workers), end with bit-identical weights."""
import os
import sys

import pytest
import torch

import tests.toy_methods  # noqa: F401  (registers the hidden test doubles)
from tests.toy_methods import write_toy_run
from tubelet.data.synth import preset, write_dataset
from tubelet.engine import trainer
from tubelet.engine.config import load_experiment
from tubelet.engine.trainer import train

TINY = "configs/condinst_track_tiny.yaml"


def _weights(run_dir) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


def _assert_bit_identical(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    differ = {k: float((a[k].double() - b[k].double()).abs().max()) for k in a
              if not torch.equal(a[k], b[k])}
    assert not differ, f"{len(differ)} tensors differ, e.g. {list(differ.items())[:3]}"


def _toy_cfg(tmp_path, *extra):
    """toy-regress with dropout (the trainer's torch RNG) and input noise (the loading process's
    torch RNG): 8 samples in batches of 2, so an epoch is 4 micro-batches."""
    y, gt = write_toy_run(tmp_path, "{dim: 4, samples: 8, dropout: 0.3, noise: 0.1}",
                          "{lr: 0.01, batch_size: 2, max_iters: 12, warmup_iters: 0, log_every: 1,"
                          " ckpt_every: 1000, deterministic: true}")
    return load_experiment(str(y), [f"data.train_json={gt}", *extra])


@pytest.mark.parametrize("extra", [[], ["train.accum_steps=2"], ["train.num_workers=1"]],
                         ids=["plain", "accum2", "worker"])
def test_resume_mid_epoch_is_bit_identical(tmp_path, extra):
    """12 steps == 5 steps + resume 7, stopping mid-epoch (micro-batch 5 of 4 per epoch; 10
    with accumulation): the resumed run must not re-draw its DataLoader seed, and the dropout
    and worker noise must continue from where the interrupted run left them."""
    full = train(_toy_cfg(tmp_path, *extra), tmp_path / "full", progress=False)["losses"]
    first = train(_toy_cfg(tmp_path, *extra), tmp_path / "split", progress=False,
                  stop_after=5)["losses"]
    rest = train(_toy_cfg(tmp_path, *extra), tmp_path / "split", resume=True,
                 progress=False)["losses"]
    assert len(first) == 5 and first + rest == full
    _assert_bit_identical(_weights(tmp_path / "full"), _weights(tmp_path / "split"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, preset("tiny"), seed=0)
    return root


def _tiny_overrides(root, *extra) -> list[str]:
    return [f"data.train_json={root}/train/instances.json",
            f"data.train_images={root}/train/JPEGImages", "train.log_every=1000",
            "train.ckpt_every=1000", "train.deterministic=true", *extra]


def test_two_seeded_runs_are_bit_identical(tiny_data, tmp_path, monkeypatch):
    """condinst-track tiny, 12 steps (runs on 2 CPU threads used to part after 7-10): once in
    this process and once through the CLI in a fresh interpreter (its own hash seed) with
    ``--threads 2``; both train on one thread with deterministic kernels."""
    seen = []
    real = trainer.split_losses

    def spy(out):
        seen.append((torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()))
        return real(out)
    monkeypatch.setattr(trainer, "split_losses", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = load_experiment(TINY, _tiny_overrides(tiny_data, "train.max_iters=12"))
        a = train(cfg, tmp_path / "a", progress=False)
        assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == \
            (2, False)  # the caller's settings are back
    finally:
        torch.set_num_threads(before)
    assert len(seen) == 12 and set(seen) == {(1, True)}
    import subprocess
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run([sys.executable, "-m", "tubelet", "train", "--config", TINY, "--out",
                        str(tmp_path / "b"), "--no-progress", "--threads", "2",
                        *_tiny_overrides(tiny_data, "train.max_iters=12")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(a["losses"]) == 12
    _assert_bit_identical(_weights(tmp_path / "a"), _weights(tmp_path / "b"))


def test_resume_with_accumulation_is_bit_identical(tiny_data, tmp_path):
    """condinst-track tiny (its proposal and negative subsampling draw from the torch RNG),
    batch 1, accum_steps 2: 6 steps == 3 + resume 3, stopping at micro-batch 6 of 4 per epoch."""
    def cfg(): return load_experiment(TINY, _tiny_overrides(
        tiny_data, "train.max_iters=6", "train.batch_size=1", "train.accum_steps=2"))
    full = train(cfg(), tmp_path / "full", progress=False)["losses"]
    first = train(cfg(), tmp_path / "split", progress=False, stop_after=3)["losses"]
    rest = train(cfg(), tmp_path / "split", resume=True, progress=False)["losses"]
    assert first + rest == full
    _assert_bit_identical(_weights(tmp_path / "full"), _weights(tmp_path / "split"))
