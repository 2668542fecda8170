import os
import sys
from pathlib import Path

import pytest

DAVIS_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"
if not DAVIS_ROOT.exists():  # CI clones the repo with shared/ beside it
    DAVIS_ROOT = Path(os.environ.get("TUBELET_DAVIS", "../shared/data/davis2016")).resolve()


@pytest.fixture(scope="session")
def davis_root() -> Path:
    assert DAVIS_ROOT.exists(), f"DAVIS data expected at {DAVIS_ROOT}"
    return DAVIS_ROOT


def run_cli(*args: str, cwd=None):
    """Run the tubelet CLI in a subprocess; returns CompletedProcess (text)."""
    import subprocess
    return subprocess.run([sys.executable, "-m", "tubelet", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread per test process: `make test` runs 2 xdist workers on 2 cores, and
    tiny tensors gain nothing from a second thread while contention makes them several times
    slower (measured on the model tests). Subprocesses set OMP_NUM_THREADS themselves."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
