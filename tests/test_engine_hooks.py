"""Engine v2: trainer hooks (dataset / sampler / collate, logging-only values), lr groups,
schedules, EMA, exact resume with all of them; tracker validation at build; layering."""
import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import tests.toy_methods  # noqa: F401  (registers the hidden test doubles)
from tests.toy_methods import write_toy_run
from tubelet.engine.config import load_experiment
from tubelet.engine.optim import ModelEMA, lr_multiplier, param_groups
from tubelet.engine.schedule import lr_factor
from tubelet.engine.trainer import train
from tubelet.errors import InputError
from tubelet.methods import build_method, list_methods

SRC = Path(__file__).resolve().parents[1] / "src" / "tubelet"


def _toy_cfg(tmp_path, *extra):
    y, gt = write_toy_run(tmp_path, "{dim: 4, samples: 8}",
                          "{lr: 0.01, batch_size: 2, max_iters: 6, warmup_iters: 0, log_every: 1,"
                          " ckpt_every: 3}")
    return load_experiment(str(y), [f"data.train_json={gt}", *extra])


def test_hidden_doubles_are_not_listed():
    assert "toy-regress" not in list_methods() and "toy-offline" not in list_methods()
    assert build_method("toy-regress").cfg.dim == 4


def test_logging_only_values_are_not_in_the_loss(tmp_path):
    cfg = _toy_cfg(tmp_path)
    s = train(cfg, tmp_path / "run", progress=False)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    assert "abs_err" in head and "loss_mse" in head
    r1 = dict(zip(head, rows[1].split(",")))
    assert float(r1["loss"]) == pytest.approx(float(r1["loss_mse"]))  # abs_err not summed
    assert float(r1["loss"]) == pytest.approx(s["losses"][0])


@pytest.mark.parametrize("extra", [
    ["train.schedule=cosine", "train.ema=true", "train.ema_tau=0", "train.ema_decay=0.5"],
    ["train.accum_steps=2", "train.lr_mults={head: 3.0}", "train.grad_clip=0.5"],
])
def test_exact_resume_with_hooks(tmp_path, extra):
    # exact = bit-identical, which needs the deterministic mode (tests/test_engine_determinism.py)
    extra = [*extra, "train.deterministic=true"]
    full = train(_toy_cfg(tmp_path, *extra), tmp_path / "full", progress=False)["losses"]
    # interrupted after step 3 of the same 6-step run (the cosine schedule spans all 6)
    first = train(_toy_cfg(tmp_path, *extra), tmp_path / "split", progress=False,
                  stop_after=3)["losses"]
    rest = train(_toy_cfg(tmp_path, *extra), tmp_path / "split", resume=True,
                 progress=False)["losses"]
    assert first + rest == full
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    for part in ("model",) + (("ema",) if "train.ema=true" in extra else ()):
        sa = a[part] if part == "model" else a[part]["model"]
        sb = b[part] if part == "model" else b[part]["model"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), part


def test_init_weights_starts_from_a_checkpoint_at_step_0(tmp_path):
    src = tmp_path / "src"
    train(_toy_cfg(tmp_path, "train.max_iters=3"), src, progress=False)
    want = torch.load(src / "last.pt", weights_only=True)["model"]
    # one step at lr 1e-30: the written weights are the loaded ones (moved by < 1e-20)
    train(_toy_cfg(tmp_path, "train.max_iters=1", "train.lr=1e-30",
                   f"train.init_weights={src / 'last.pt'}"), tmp_path / "zero", progress=False)
    got = torch.load(tmp_path / "zero" / "last.pt", weights_only=True)
    assert int(got["step"]) == 1
    for k in want:
        torch.testing.assert_close(got["model"][k], want[k], rtol=0, atol=1e-20)
    fresh = torch.load(tmp_path / "src" / "last.pt", weights_only=True)  # unchanged source
    assert all(torch.equal(fresh["model"][k], want[k]) for k in want)
    # training from it differs from training from scratch (same seed, same batches)
    a = train(_toy_cfg(tmp_path, "train.max_iters=1"), tmp_path / "a", progress=False)
    b = train(_toy_cfg(tmp_path, "train.max_iters=1", f"train.init_weights={src / 'last.pt'}"),
              tmp_path / "b", progress=False)
    assert a["losses"] != b["losses"]
    with pytest.raises(InputError, match="checkpoint not found"):
        train(_toy_cfg(tmp_path, f"train.init_weights={tmp_path / 'nope.pt'}"), tmp_path / "c",
              progress=False)
    with pytest.raises(InputError, match="do not fit"):  # another architecture (dim 5)
        train(_toy_cfg(tmp_path, "model.dim=5", f"train.init_weights={src / 'last.pt'}"),
              tmp_path / "d", progress=False)


def test_resume_without_ema_state_is_a_clear_error(tmp_path):
    train(_toy_cfg(tmp_path, "train.max_iters=3"), tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="cannot resume"):
        train(_toy_cfg(tmp_path, "train.ema=true"), tmp_path / "r", resume=True, progress=False)


def test_ema_update_by_hand():
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(2.0)
    ema = ModelEMA(lin, decay=0.5, tau=0)
    with torch.no_grad():
        lin.weight.fill_(4.0)
    ema.update(lin)  # 0.5 * 2 + 0.5 * 4 = 3
    assert ema.module.weight.item() == pytest.approx(3.0)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema.update(lin)  # 0.5 * 3 + 0.5 * 0 = 1.5
    assert ema.module.weight.item() == pytest.approx(1.5)
    ramp = ModelEMA(lin, decay=0.9, tau=2.0)
    ramp.updates = 2
    assert ramp.current_decay() == pytest.approx(0.9 * (1 - math.exp(-1)))


def test_cosine_and_multistep_by_hand():
    # cosine, no warm-up, 10 steps, floor 0.1: 0.1 + 0.9 * (1 + cos(pi * s / 10)) / 2
    assert lr_factor(0, 0, 1, (), 0.1, "cosine", 10, 0.1) == pytest.approx(1.0)
    assert lr_factor(5, 0, 1, (), 0.1, "cosine", 10, 0.1) == pytest.approx(0.55)
    assert lr_factor(10, 0, 1, (), 0.1, "cosine", 10, 0.1) == pytest.approx(0.1)
    # warm-up 4 steps from 0.001: at step 2, a = 0.5 -> 0.001 * 0.5 + 0.5 = 0.5005
    assert lr_factor(2, 4, 0.001, (), 0.1, "cosine", 100, 0.0) == pytest.approx(
        0.5005 * 0.5 * (1 + math.cos(math.pi * 0.02)))
    assert lr_factor(7, 0, 1, (5, 8), 0.1, "multistep") == pytest.approx(0.1)
    assert lr_factor(8, 0, 1, (5, 8), 0.1, "multistep") == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(0, 0, 1, (), 0.1, "linear")


def test_lr_multipliers_and_no_decay_groups():
    assert lr_multiplier("segmenter.backbone.body.0.weight", {"backbone": 0.1}) == 0.1
    assert lr_multiplier("backbone_extra.weight", {"backbone": 0.1}) == 1.0  # whole names only
    assert lr_multiplier("a.b.c.w", {"a": 2.0, "a.b": 3.0}) == 3.0          # longest wins
    m = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1))
    groups = param_groups(m, 1.0, 0.1, {"2": 0.5})
    by = {(g["lr"], g["weight_decay"]): sum(p.numel() for p in g["params"]) for g in groups}
    # lr 1: Linear(2,3) weight 6 decayed; its bias 3 + LayerNorm weight 3 + bias 3 = 9 not
    # decayed; lr 0.5 (module "2"): Linear(3,1) weight 3 decayed, bias 1 not decayed
    assert by == {(1.0, 0.1): 6, (1.0, 0.0): 9, (0.5, 0.1): 3, (0.5, 0.0): 1}
    flat = param_groups(m, 1.0, 0.1, {}, decay_norm_bias=True)
    assert len(flat) == 1 and flat[0]["weight_decay"] == 0.1


@pytest.mark.parametrize("over,msg", [
    (["train.log_every=0"], "log_every"), (["train.ckpt_every=0"], "ckpt_every"),
    (["train.accum_steps=0"], "accum_steps"), (["train.batch_size=0"], "batch_size"),
    (["train.device=tpu"], "device"), (["train.schedule=linear"], "schedule"),
    (["train.max_iters=-1"], "max_iters")])
def test_bad_train_values_fail_at_load(tmp_path, over, msg):
    with pytest.raises(InputError, match=msg):
        _toy_cfg(tmp_path, *over)


def test_tracker_checked_when_the_model_is_built():
    cfg = load_experiment("configs/condinst_track_tiny.yaml", ["model.tracker=foo"])
    with pytest.raises(InputError, match="greedy") as e:
        build_method(cfg.method, cfg.model)
    assert "foo" in str(e.value)
    cfg = load_experiment("configs/condinst_track_tiny.yaml",
                          ["model.tracker=memory", "model.embed=false"])
    with pytest.raises(InputError, match="embeddings"):
        build_method(cfg.method, cfg.model)
    cfg = load_experiment("configs/condinst_track_tiny.yaml", ["model.tracker=iai"])
    with pytest.raises(InputError, match="id_probs"):
        build_method(cfg.method, cfg.model)


def _module_imports(path: Path, pkg: str, mods) -> set[str]:
    """Modules of tubelet imported at any level of ``path`` (relative imports resolved).
    ``from pkg import sub`` counts as importing the submodule ``pkg.sub`` when it is one (its
    parent package's ``__init__`` runs for every submodule import and is no edge of its own)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("tubelet")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] +
                                ([base] if base else []))
            if base.startswith("tubelet"):
                for a in node.names:
                    out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base)
    return out


def _graph() -> dict[str, set[str]]:
    mods = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        mods[name] = p
    graph = {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = {m for m in _module_imports(p, pkg, mods) if m in mods and m != name}
    return graph


def test_no_import_cycle_in_src():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(n, stack):
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m, stack + [m])
        state[n] = 2
    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_layers_point_down():
    """The engine imports methods; methods, models, trackers and ops never import the engine."""
    for name, deps in _graph().items():
        if name.startswith(("tubelet.methods", "tubelet.models", "tubelet.trackers",
                            "tubelet.ops", "tubelet.data", "tubelet.structures")):
            bad = sorted(d for d in deps if d.startswith(("tubelet.engine", "tubelet.cli")))
            assert not bad, f"{name} imports {bad}"


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_stored_configs_from_before_the_thr_renames_still_load():
    from tubelet.engine.config import experiment_from_dict
    from tubelet.engine.loading import migrate_stored_config
    old = {"method": "condinst-track",
           "model": {"model": {"num_classes": 3, "score_thresh": 0.07, "nms_thresh": 0.55},
                     "greedy": {"gate": 0.95, "min_mean_score": 0.2},
                     "memory": {"min_score": 0.15, "mask_nms_iou": 0.4}}}
    cfg = experiment_from_dict(migrate_stored_config(old)).model
    assert (cfg.model.score_thr, cfg.model.nms_thr) == (0.07, 0.55)
    assert (cfg.greedy.gate_thr, cfg.greedy.mean_score_thr) == (0.95, 0.2)
    assert (cfg.memory.score_thr, cfg.memory.mask_nms_thr) == (0.15, 0.4)


def test_export_carries_the_ema_weights_of_an_ema_run(tmp_path):
    # inference on the checkpoint loads the EMA weights; the exported file must hold the same
    from tubelet.engine.export import export
    train(_toy_cfg(tmp_path, "train.ema=true", "train.ema_tau=0", "train.ema_decay=0.5"),
          tmp_path / "r", progress=False)
    ck = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    export(str(tmp_path / "r" / "last.pt"), str(tmp_path / "e.pt"))
    out = torch.load(tmp_path / "e.pt", weights_only=True)["model"]
    ema, raw = ck["ema"]["model"], ck["model"]
    assert set(out) == set(ema)
    floats = [k for k in ema if ema[k].is_floating_point()]
    assert floats and any(not torch.allclose(ema[k], raw[k]) for k in floats)
    for k in floats:  # fp16 rounding of the EMA tensor, not the raw one
        assert torch.allclose(out[k].float(), ema[k], rtol=2 ** -10, atol=1e-7), k
