"""Engine tests over every registered method: train a few steps, predict, resume, DDP."""
import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tubelet.data.synth import preset, write_dataset
from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.engine.config import load_experiment
from tubelet.engine.predict import dataset_frames
from tubelet.engine.registry import build_method, list_methods
from tubelet.engine.trainer import train

TINY = "configs/condinst_track_tiny.yaml"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    paths = write_dataset(root, preset("tiny"), seed=0)
    return root, paths


def _cfg(tiny_data, method=None, extra=()):
    root, _ = tiny_data
    ov = [f"data.train_json={root}/train/instances.json",
          f"data.train_images={root}/train/JPEGImages", *extra]
    cfg = load_experiment(TINY, ov)
    if method is not None and method != cfg.method:
        pytest.fail(f"no tiny config for method {method}")
    return cfg


def test_registry_refuses_duplicates():
    from tubelet.engine.registry import register_method
    assert "condinst-track" in list_methods()
    with pytest.raises(ValueError, match="already registered"):
        register_method("condinst-track", object)(lambda c: c)


@pytest.mark.parametrize("method", list_methods())
def test_smoke_train_predict(method, tiny_data, tmp_path):
    root, _ = tiny_data
    cfg = _cfg(tiny_data, method, ["train.max_iters=3"])
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and all(np.isfinite(summary["losses"]))
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "metrics.csv").exists()
    model = build_method(cfg.method, cfg.model)
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    model.load_state_dict(ck["model"])
    gt = load_ytvis(root / "valid" / "instances.json")
    vid = sorted(gt.videos)[0]
    model.set_categories(sorted(gt.categories.items()))
    stream = model.predict_video(dataset_frames(gt, vid, root / "valid" / "JPEGImages"))
    outs = list(stream)
    video = stream.result()
    assert [o.index for o in outs] == list(range(gt.videos[vid].length))
    assert video.length == gt.videos[vid].length
    load_results(video.to_results(vid), gt)  # valid YouTube-VIS records (raises otherwise)


def test_resume_is_exact(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, extra=["train.max_iters=4", "train.ckpt_every=2", "model.embed=true"])
    full = train(cfg, tmp_path / "full", progress=False)["losses"]
    half = _cfg(tiny_data, extra=["train.max_iters=2", "train.ckpt_every=2", "model.embed=true"])
    first = train(half, tmp_path / "split", progress=False)["losses"]
    rest = train(cfg, tmp_path / "split", resume=True, progress=False)["losses"]
    assert len(full) == 4 and len(first) == 2 and len(rest) == 2
    assert first + rest == full  # bit-identical loss sequence
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


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
