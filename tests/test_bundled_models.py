"""The bundled models by name (``--model objects|synth``) and the rule that picks one when none
is named: ``synth`` for a dataset written by ``tubelet synth``, ``objects`` for anything else."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tubelet.cli.main import main
from tubelet.engine.loading import (MODELS, SYNTH_DESCRIPTION, bundled_model, default_model,
                                   load_method)

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"


def _frames(folder, n=3, size=(64, 96)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(n):
        Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(
            folder / f"{t:05d}.jpg")
    return folder


def _dataset(root, info):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "instances.json").write_text(json.dumps(
        {"info": info, "videos": [], "categories": [], "annotations": []}))
    return root


def test_default_model_rule(tmp_path):
    assert default_model(tmp_path / "clip.mp4") == "objects"  # a video file (even a missing one)
    assert default_model(_frames(tmp_path / "frames")) == "objects"
    assert default_model(_dataset(tmp_path / "s", {"description": SYNTH_DESCRIPTION})) == "synth"
    assert default_model(_dataset(tmp_path / "y", {"description": "YouTube-VIS 2019"})) \
        == "objects"
    assert default_model(_dataset(tmp_path / "n", None)) == "objects"
    bad = _dataset(tmp_path / "b", {})
    (bad / "instances.json").write_text("{not json")
    assert default_model(bad) == "objects"  # the dataset loader reports the file itself


def test_the_synth_rule_matches_what_tubelet_synth_writes(tmp_path):
    rc = main(["synth", str(tmp_path / "s"), "--preset", "tiny", "--seed", "3"])
    assert rc == 0
    splits = [p for p in (tmp_path / "s").iterdir() if (p / "instances.json").exists()]
    assert splits and all(default_model(p) == "synth" for p in splits)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bundled_models_load_and_say_what_they_are(name):
    path = bundled_model(name)
    assert path.stat().st_size <= 15 * 1024 * 1024
    ck = torch.load(path, weights_only=True)
    cats = [n for _, n in ck["meta"]["categories"]]
    assert (cats == ["object"]) == (name == "objects")
    assert f"`{path.name}`" in (path.parent / "MODEL_CARD.md").read_text()


def test_unknown_or_doubled_model_is_a_one_line_error(tmp_path, capsys):
    src = _frames(tmp_path / "f")
    rc = main(["predict", "--model", "nope", "--source", str(src), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--model" in err and "objects" in err and "synth" in err
    assert "Traceback" not in err
    rc = main(["predict", "--model", "objects", "--weights", "x.pt", "--source", str(src),
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "give one of" in capsys.readouterr().err


@pytest.mark.skipif(not (DAVIS / "JPEGImages" / "480p" / "dog").is_dir(),
                    reason="the shared DAVIS sequences are not on this machine")
def test_real_frames_default_to_the_objects_model(tmp_path, capsys):
    # 4 real DAVIS frames (dog), downscaled: the default model is the class-agnostic one
    src = tmp_path / "dog"
    src.mkdir()
    for t in range(4):
        im = Image.open(DAVIS / "JPEGImages" / "480p" / "dog" / f"{t:05d}.jpg")
        im.resize((427, 240)).save(src / f"{t:05d}.jpg")
    rc = main(["predict", "--source", str(src), "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 0
    assert "model: objects" in capsys.readouterr().err
    cats = json.loads((tmp_path / "o" / "categories.json").read_text())
    assert [c["name"] for c in cats] == ["object"]
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert all(r["category_id"] == 1 for r in res)


def test_api_load_model_by_name():
    import tubelet
    a = tubelet.load_model()  # the default is the real-footage model
    assert [n for _, n in a.categories] == ["object"]
    b = tubelet.load_model("synth")
    assert len(b.categories) == 10


def test_bundled_objects_model_carries_its_configs_model():
    # exported from a run of configs/condinst_track_objects.yaml: the same CondInst fields, the
    # stride-4 mask branch and the BCE term included, and the network built from them has P2
    from tubelet.engine.config import load_experiment
    model, cfg = load_method(None, str(bundled_model("objects")))
    want = load_experiment("configs/condinst_track_objects.yaml").model.model
    assert cfg.model.model == want
    assert tuple(want.mask_in_features) == ("p2", "p3", "p4", "p5") and want.mask_bce_weight == 1
    assert model.segmenter.mask_branch.stride == 4
