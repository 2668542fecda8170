"""The bundled synthetic-benchmark model and ``make demo``'s script, offline, end to end."""
import json
import os
import subprocess
import sys

import torch

from tubelet.data.synth import CATEGORIES
from tubelet.data.ytvis import load_results, load_ytvis
from tubelet.engine.loading import BUNDLED


def test_bundled_weights_are_small_safe_and_complete():
    assert BUNDLED.exists(), "the package must ship its bundled model"
    assert BUNDLED.stat().st_size < 10 * 2 ** 20  # "a few MB"
    ck = torch.load(BUNDLED, weights_only=True)  # plain tensors and JSON-able meta only
    meta = ck["meta"]
    assert meta["method"] == "condinst-track"
    names = [n for _, n in meta["categories"]]
    assert names == [c.name for c in CATEGORIES]  # the synthetic benchmark's classes, in order
    card = BUNDLED.parent / "MODEL_CARD.md"
    assert card.exists() and "tubelet train --config configs/condinst_track_bench.yaml" in \
        card.read_text()


def test_demo_runs_offline_and_scores(tmp_path):
    env = {**os.environ, "TUBELET_ALLOW_DOWNLOAD": "0"}  # no network, whatever the caller set
    r = subprocess.run([sys.executable, "-m", "tubelet.demo", "--out", str(tmp_path / "d"),
                        "--videos", "1"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    pred = tmp_path / "d" / "pred"
    gt = load_ytvis(tmp_path / "d" / "data" / "valid" / "instances.json")
    recs = load_results(pred / "results.json", gt)  # validates ids, sizes, frame counts
    assert len(recs) > 0
    metrics = json.loads((pred / "metrics.json").read_text())
    # a model that learned anything finds some of a fresh video's objects
    assert metrics["AP50"] > 0.1, metrics
    assert len(list(pred.glob("*.mp4"))) == 1
    assert "AP" in r.stdout
