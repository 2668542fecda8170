"""Hungarian (minimum-cost) matching: the one copy every method and tracker uses.

``hungarian(cost)`` solves the rectangular assignment problem on a ``[R, C]`` cost matrix and
returns ``(rows, cols)``: ``min(R, C)`` pairs, each row and each column used at most once, with the
smallest total cost. Rows come back in ascending order. Non-finite costs are an error (a NaN in a
cost matrix is a bug upstream, never something to match around silently); forbid a pair with a
large finite cost instead.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def hungarian(cost: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment.

    Args:
        cost: ``[R, C]`` finite costs (numpy or torch; a torch tensor is detached and moved to
            the CPU).
    Returns:
        ``(rows [M], cols [M])`` int64 with ``M = min(R, C)``, rows ascending.
    """
    if isinstance(cost, torch.Tensor):
        cost = cost.detach().float().cpu().numpy()
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if cost.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not np.isfinite(cost).all():
        raise ValueError("cost matrix has non-finite entries")
    rows, cols = linear_sum_assignment(cost)
    return rows.astype(np.int64), cols.astype(np.int64)
