"""Engine tests over every registered method: train a few steps, predict, resume, DDP."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from pathlib import Path

from tests.conftest import run_cli
from tubelet.data.synth import preset, write_dataset
from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.engine.config import load_experiment, resolve_config_path
from tubelet.engine.loading import load_method
from tubelet.engine.predict import dataset_video
from tubelet.engine.trainer import train
from tubelet.methods import list_methods

TINY = "configs/condinst_track_tiny.yaml"
GOLDEN = Path(__file__).parent / "expect" / "golden_losses.json"
# Re-record on purpose (after a change that is meant to alter the losses):
#   TUBELET_RECORD_GOLDEN=1 .venv/bin/python -m pytest tests/test_engine_methods.py -k smoke
# prints the new numbers and rewrites tests/expect/golden_losses.json; commit it with the change.
RECORD = os.environ.get("TUBELET_RECORD_GOLDEN") == "1"


def tiny_config(method: str) -> str:
    """Every method's smoke-test config, by convention: configs/<method>_tiny.yaml."""
    return f"configs/{method.replace('-', '_')}_tiny.yaml"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    paths = write_dataset(root, preset("tiny"), seed=0)
    return root, paths


def _cfg(tiny_data, method="condinst-track", extra=()):
    root, _ = tiny_data
    # the basic keys every method's config understands
    ov = [f"data.train_json={root}/train/instances.json",
          f"data.train_images={root}/train/JPEGImages", *extra]
    path = tiny_config(method)
    assert Path(path).exists(), f"method {method} has no tiny config at {path}"
    cfg = load_experiment(path, ov)
    assert cfg.method == method, f"{path} configures {cfg.method}, not {method}"
    return cfg


def test_registry_refuses_duplicates():
    from tubelet.methods import register_method
    assert "condinst-track" in list_methods()
    with pytest.raises(ValueError, match="already registered"):
        register_method("condinst-track", object)(lambda c: c)


def _golden_check(method: str, losses: list[float]) -> None:
    table = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if RECORD:
        table[method] = losses
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        print(f"recorded golden losses for {method}: {losses}")
        return
    assert method in table, (f"no golden losses for {method}: record them with "
                             f"TUBELET_RECORD_GOLDEN=1 (see the top of this file)")
    want = table[method]
    assert len(want) == len(losses)
    for i, (a, b) in enumerate(zip(losses, want)):
        # Steps 0-1 (the initial weights' losses and one update): 1e-4. Later steps: 5e-3. The CPU
        # kernels oneDNN picks depend on the machine (AVX2 vs AVX-512 / AMX), their float rounding
        # differs, and two updates amplify it: on a Sapphire Rapids machine (session 10) the goldens
        # recorded earlier were off by 1e-3 (yolov4-seg, step 2) and 2e-3 (propose-reduce, step 3),
        # steps 0-1 still within 1e-4. A changed loss or data path moves step 0 already.
        tol = 1e-4 if i < 2 else 5e-3
        assert abs(a - b) <= tol * max(1.0, abs(b)), f"{method} step {i}: {a} != golden {b}"


@pytest.mark.parametrize("method", list_methods())
def test_smoke_train_resume_predict(method, tiny_data, tmp_path):
    """Any registered method: 4 seeded steps match the golden losses; 2 + resume 2 gives the
    same losses and weights bit for bit (in the deterministic mode, which bit-identical resumes
    need); the checkpoint predicts a valid result."""
    root, _ = tiny_data
    det = "train.deterministic=true"
    cfg = _cfg(tiny_data, method, ["train.max_iters=4", "train.ckpt_every=2", det])
    full = train(cfg, tmp_path / "full", progress=False)
    assert full["steps"] == 4 and all(np.isfinite(full["losses"]))
    assert (tmp_path / "full" / "last.pt").exists() and (tmp_path / "full" / "metrics.csv").exists()
    _golden_check(method, full["losses"])
    half = _cfg(tiny_data, method, ["train.max_iters=2", "train.ckpt_every=2", det])
    first = train(half, tmp_path / "split", progress=False)["losses"]
    rest = train(cfg, tmp_path / "split", resume=True, progress=False)["losses"]
    assert first + rest == full["losses"]  # bit-identical loss sequence
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["model"]
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "split" / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]  # no repeated rows

    model, _ = load_method(None, str(tmp_path / "full" / "last.pt"))
    gt = load_ytvis(root / "valid" / "instances.json")
    vid = sorted(gt.videos)[0]
    with dataset_video(gt, vid, root / "valid" / "JPEGImages") as video:
        stream = model.predict_video(video)
        outs = list(stream)
    result = stream.result()
    assert sorted(o.index for o in outs) == list(range(gt.videos[vid].length))
    assert result.length == gt.videos[vid].length
    load_results(result.to_results(vid), gt)  # valid YouTube-VIS records (raises otherwise)


def test_every_method_has_a_tiny_config():
    for m in list_methods():
        assert resolve_config_path(tiny_config(m)).exists()


def _frames_gt(gt, v):
    """A one-video GT (id 1) of video ``v``: what `predict` on a frames folder reports."""
    from tubelet.data.ytvis import Video, YTVISDataset
    return YTVISDataset({1: Video(1, v.width, v.height, v.length)}, gt.categories, [])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_stay_identical(tiny_data, tmp_path):
    root, _ = tiny_data
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1", "-m", "tubelet", "train",
           "--config", TINY, "--out", str(tmp_path / "ddp"), "--no-progress",
           f"data.train_json={root}/train/instances.json",
           f"data.train_images={root}/train/JPEGImages", "train.max_iters=2",
           "train.batch_size=1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    c = summary["checksums"]
    assert len(c) == 2 and c[0] == c[1]  # replicas identical after the steps
    assert summary["steps"] == 2 and all(np.isfinite(summary["losses"]))
    assert r.stdout.count("trained 2 steps") == 1, r.stdout  # rank 0 only


def test_predict_cli_dataset_and_frames(tiny_data, tmp_path):
    root, _ = tiny_data
    cfg_over = [f"data.train_json={root}/train/instances.json",
                f"data.train_images={root}/train/JPEGImages", "train.max_iters=2"]
    r = run_cli("train", "--config", TINY, "--out", tmp_path / "run", "--no-progress", *cfg_over)
    assert r.returncode == 0, r.stderr[-2000:]
    w = tmp_path / "run" / "last.pt"
    r = run_cli("predict", "--weights", w, "--source", root / "valid", "--out", tmp_path / "p",
                "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert 0.0 <= metrics["AP"] <= 1.0 and "AR10" in metrics
    gt = load_ytvis(root / "valid" / "instances.json")
    load_results(tmp_path / "p" / "results.json", gt)
    v = gt.videos[sorted(gt.videos)[0]]
    frames = root / "valid" / "JPEGImages" / v.name
    r = run_cli("predict", "--weights", w, "--source", frames, "--out", tmp_path / "f",
                "--overlay", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "f" / "results.json").exists() and (tmp_path / "f" / f"{v.name}.mp4").exists()
    # the exported (fp16, meta-only) file predicts like the checkpoint it came from
    from tubelet.engine.export import export
    export(str(w), str(tmp_path / "small.pt"))
    assert (tmp_path / "small.pt").stat().st_size < w.stat().st_size
    r = run_cli("predict", "--weights", tmp_path / "small.pt", "--source", frames, "--out",
                tmp_path / "g", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    load_results(tmp_path / "g" / "results.json", _frames_gt(gt, v))
    full = torch.load(w, weights_only=True)["model"]
    small = torch.load(tmp_path / "small.pt", weights_only=True)["model"]
    assert set(full) == set(small)
    for k, x in full.items():  # fp16 rounding only: relative error <= 2**-11
        if x.is_floating_point():
            assert torch.allclose(small[k].float(), x, rtol=2 ** -10, atol=1e-7), k
    r = run_cli("predict", "--weights", tmp_path / "nope.pt", "--source", frames)
    assert r.returncode == 2 and "nope.pt" in r.stderr and "Traceback" not in r.stderr
    # export can change inference settings of the stored config, never the architecture
    export(str(w), str(tmp_path / "gated.pt"), overrides=["model.greedy.score_thr=0.25"])
    meta = torch.load(tmp_path / "gated.pt", weights_only=True)["meta"]
    assert json.loads(meta["config"])["model"]["greedy"]["score_thr"] == 0.25
    from tubelet.engine.export import main as export_main
    assert export_main([str(w), str(tmp_path / "bad.pt"), "model.model.num_classes=7"]) == 2
    assert not (tmp_path / "bad.pt").exists()
