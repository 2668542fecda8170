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
