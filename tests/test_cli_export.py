"""`tubelet export` (and `python -m tubelet.engine.export`, which runs it)."""
import json

import pytest
import torch

from tubelet.cli.main import main

TINY = "configs/condinst_track_tiny.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A training-style checkpoint of the tiny condinst-track model (random weights)."""
    from tubelet.engine.checkpoint import save_checkpoint
    from tubelet.engine.config import experiment_to_dict, load_experiment
    from tubelet.methods import build_method
    cfg = load_experiment(TINY)
    model = build_method(cfg.method, cfg.model)
    path = tmp_path_factory.mktemp("ck") / "last.pt"
    save_checkpoint(path, model=model.state_dict(), step=7,
                    meta={"method": cfg.method, "config": json.dumps(experiment_to_dict(cfg))})
    return path


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_export_half_and_fp32(checkpoint, tmp_path, capsys):
    from tubelet.engine.checkpoint import load_checkpoint
    dst = tmp_path / "w.pt"
    rc, out, _ = cli(capsys, "export", checkpoint, dst)
    assert rc == 0 and f"wrote {dst} (condinst-track, step 7)" in out
    ck = load_checkpoint(dst)
    floats = [v for v in ck["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert ck["meta"]["step"] == 7
    rc, _, _ = cli(capsys, "export", checkpoint, dst, "--fp32")
    assert rc == 0
    assert all(v.dtype == torch.float32 for v in load_checkpoint(dst)["model"].values()
               if v.is_floating_point())


def test_export_overrides_change_the_stored_config(checkpoint, tmp_path, capsys):
    from tubelet.engine.checkpoint import load_checkpoint
    dst = tmp_path / "w.pt"
    # key=value may also come after an option
    rc, _, err = cli(capsys, "export", checkpoint, dst, "--fp32", "model.test_short_side=96")
    assert rc == 0, err
    stored = json.loads(load_checkpoint(dst)["meta"]["config"])
    assert stored["model"]["test_short_side"] == 96
    # re-exporting an exported file (to change an inference setting) keeps weights and step
    dst2 = tmp_path / "w2.pt"
    rc, out, err = cli(capsys, "export", dst, dst2, "--fp32", "model.test_short_side=128")
    assert rc == 0 and "step 7" in out, err
    a, b = load_checkpoint(dst), load_checkpoint(dst2)
    assert b["meta"]["step"] == 7
    assert json.loads(b["meta"]["config"])["model"]["test_short_side"] == 128
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_export_bad_input_is_one_line_exit_2(checkpoint, tmp_path, capsys):
    dst = tmp_path / "bad.pt"
    rc, _, err = cli(capsys, "export", checkpoint, dst, "model.model.num_classes=7")
    assert rc == 2 and err.startswith("tubelet export: error: ") and err.count("\n") == 1
    assert not dst.exists()
    rc, _, err = cli(capsys, "export", tmp_path / "missing.pt", dst)
    assert rc == 2 and "missing.pt" in err


def test_module_entry_runs_the_command(checkpoint, tmp_path, capsys):
    # `python -m tubelet.engine.export ARGS` calls this main, which runs `tubelet export ARGS`
    from tubelet.engine.export import main as export_main
    assert export_main([str(checkpoint), str(tmp_path / "bad.pt"), "model.nope=1"]) == 2
    assert export_main([str(tmp_path / "no.pt"), str(tmp_path / "o.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("tubelet export: error: ") == 2 and "no.pt" in err and "Traceback" not in err
    assert export_main([str(checkpoint), str(tmp_path / "ok.pt")]) == 0
    assert (tmp_path / "ok.pt").exists()
