"""An offline method (a test double reading frames backwards by index) through the same predict
path as every method: `tubelet predict --weights W --source VIDEO`, in process."""
import json

import numpy as np
import torch

import tests.toy_methods  # noqa: F401  (registers toy-offline, hidden)
from tubelet.cli.main import main as cli
from tubelet.structures import decode
from tubelet.video import VideoWriter, open_video


def _write_video(path, n=30, h=48, w=64):
    """A bright 12x16 square moving right over a dark background (frame t at x = 2t)."""
    with VideoWriter(str(path), 10.0, w, h) as wr:
        for t in range(n):
            f = np.full((h, w, 3), 20, np.uint8)
            f[10:22, 2 * t: 2 * t + 16] = 230
            wr.write(f)


def _toy_weights(path):
    cfg = {"method": "toy-offline", "model": {"threshold": 128}}
    torch.save({"model": {"gain": torch.ones(1)},
                "meta": {"method": "toy-offline", "config": json.dumps(cfg),
                         "categories": [[1, "bright"]]}}, path)


def test_offline_double_reads_backwards_through_predict(tmp_path):
    video = tmp_path / "clip.mp4"
    _write_video(video)
    _toy_weights(tmp_path / "toy.pt")
    rc = cli(["predict", "--weights", str(tmp_path / "toy.pt"), "--source", str(video),
              "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    recs = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(recs) == 1 and recs[0]["category_id"] == 1
    segs = recs[0]["segmentations"]
    # the slow reference: iterate the decoded video in order and threshold each frame
    with open_video(video) as src:
        ref = [f.mean(axis=-1) >= 128 for f in src]
    assert len(segs) == len(ref) == 30
    for t, (s, m) in enumerate(zip(segs, ref)):
        got = decode(s) if s is not None else np.zeros_like(m)
        assert np.array_equal(got, m), t


def test_offline_double_uses_random_access_backwards(tmp_path):
    from tubelet.methods import build_method
    video = tmp_path / "clip.mp4"
    _write_video(video, n=20)
    model = build_method("toy-offline")
    with open_video(video) as src:
        model.predict_video(src).result()
    assert model.read_order == list(range(19, -1, -1))
