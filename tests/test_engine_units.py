import random
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from tubelet.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from tubelet.engine.schedule import lr_factor
from tubelet.errors import InputError
from tubelet.utils.config import apply_overrides, from_dict, to_dict


@dataclass
class Inner:
    size: tuple[int, ...] = (1, 2)
    name: str = "a"


@dataclass
class Outer:
    lr: float = 0.1
    steps: int = 3
    flag: bool = False
    maybe: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_overrides_typed_and_nested():
    c = apply_overrides(Outer(), ["lr=1e-3", "steps=7", "flag=true", "inner.size=[4,5,6]",
                                  "inner.name=xyz", "maybe=3"])
    assert c == Outer(1e-3, 7, True, 3, Inner((4, 5, 6), "xyz"))
    assert apply_overrides(c, ["maybe=null"]).maybe is None
    assert from_dict(Outer, to_dict(c)) == c


@pytest.mark.parametrize("bad,needle", [("steps=abc", "integer"), ("nope=1", "unknown key"),
                                        ("inner.zzz=1", "unknown key"), ("flag=3", "true/false"),
                                        ("lr", "key=value"), ("lr.x=1", "not a config section")])
def test_overrides_errors(bad, needle):
    with pytest.raises(InputError, match=needle):
        apply_overrides(Outer(), [bad])


@dataclass
class Preset:
    inner: Inner = field(default_factory=lambda: Inner((9, 9), "preset"))


def test_partial_nested_section_keeps_the_field_default():
    # a YAML section naming one key changes that key of the field's default (the preset), not
    # of the nested class's own defaults
    assert from_dict(Preset, {"inner": {"name": "b"}}).inner == Inner((9, 9), "b")
    assert from_dict(Preset, {}).inner == Inner((9, 9), "preset")
    assert from_dict(Outer, {"inner": {"name": "b"}}).inner == Inner((1, 2), "b")


def test_from_dict_unknown_key():
    with pytest.raises(InputError, match="unknown key"):
        from_dict(Outer, {"lr": 1.0, "typo": 2})


def test_lr_schedule_by_hand():
    # warm-up 10 steps from factor 0.1; milestones 20, 30 with gamma 0.5
    f = lambda s: lr_factor(s, 10, 0.1, (20, 30), 0.5)
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx(0.1 * 0.5 + 0.5)  # halfway: 0.55
    assert f(10) == 1.0 and f(19) == 1.0
    assert f(20) == 0.5 and f(29) == 0.5 and f(30) == 0.25


def test_rng_state_roundtrip(tmp_path):
    random.seed(1); np.random.seed(2); torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", rng=rng_state(), step=5)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ck = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    set_rng_state(ck["rng"])
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b and ck["step"] == 5


def test_checkpoint_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot load"):
        load_checkpoint(tmp_path / "bad.pt")


def test_checkpoint_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="cannot load"):
        load_checkpoint(tmp_path / "evil.pt")
