"""Deterministic training: ``train.deterministic: true`` (issue 13, item 7).

Why two identical seeded runs differed (``configs/condinst_track_tiny.yaml``, 12 steps, a loaded
2-core CPU): with torch's default 2 intra-op threads, 1 run in 10 parted from the others (loss of
step 11: 13.6050088 vs 13.6050091; max |dw| 1.1e-5 after step 12); three runs on one thread were
bit-identical. The kernel that varies was not isolated: at 2 threads under the same load, 300
repeats each of a matmul (MKL) and of 3x3 and depthwise convolutions forward + backward
(oneDNN), and 8 repeats of one whole forward / backward, were all bit-identical: a rare,
schedule-dependent reduction order in a multi-threaded CPU kernel. This mode therefore runs ONE
intra-op thread (:data:`DETERMINISTIC_THREADS`; ``--threads N`` is overridden); N > 1 threads
are not covered.

It also sets what PyTorch's reproducibility notes ask for: deterministic kernels
(``torch.use_deterministic_algorithms(True)``: an op without one raises, naming the op, instead
of varying; on CUDA e.g. the backward passes of bilinear upsampling and ``grid_sample``), a
fixed cuBLAS workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``, read at the first cuBLAS call) and
cuDNN without autotuning. The GPU path is untested here (no GPU on the test machine).

Cost: one thread instead of the default (2 on the reference machine) and the NaN-filling of
``torch.empty`` memory that the deterministic mode implies
(``torch.utils.deterministic.fill_uninitialized_memory``); measured by
``bench/train_determinism.py`` (README, training).

Exact resume is the trainer's part (for both modes): each epoch's DataLoader seed is drawn once
and checkpointed, and re-loading the consumed micro-batches of a resumed epoch leaves the RNGs
as the checkpoint had them (``trainer.py``).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

#: the intra-op thread count of a deterministic run
DETERMINISTIC_THREADS = 1


def set_deterministic() -> None:
    """Switch this process to deterministic training (see the module docstring); global state,
    restored by :func:`deterministic_mode`."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.set_num_threads(DETERMINISTIC_THREADS)


@contextmanager
def deterministic_mode(on: bool) -> Iterator[None]:
    """While active and ``on``: :func:`set_deterministic`; afterwards the previous settings (a
    training call leaves the process as it found it, e.g. for the next test)."""
    if not on:
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.get_num_threads())
    set_deterministic()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:4]
        torch.set_num_threads(saved[4])
