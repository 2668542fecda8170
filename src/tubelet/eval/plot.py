"""Precision/recall curves of an evaluation, written as a PNG.

matplotlib is imported only here and only when a plot is asked for, and through ``Figure`` +
the Agg canvas (no pyplot, no global backend switch), so the evaluator runs headless and fast.
"""
from __future__ import annotations

import os

import numpy as np

from tubelet.utils.fileio import atomic_path


def plot_pr_curves(curves: dict[str, np.ndarray], recall_thresholds: np.ndarray,
                   path: str | os.PathLike, title: str = "precision / recall") -> None:
    """Draw category-mean precision ``[R]`` against the R recall points; write ``path`` atomically.

    Args:
        curves: label -> ``[R]`` precision (``-1`` everywhere where no category has GT: such a
            curve is listed in the legend as "no GT" and not drawn).
        recall_thresholds: ``[R]`` recall points.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, prec in curves.items():
        prec = np.asarray(prec, dtype=np.float64)
        if (prec < 0).all():
            ax.plot([], [], label=f"{label} (no GT)")
            continue
        ax.plot(recall_thresholds, np.clip(prec, 0, None), label=f"{label} (AP {prec.mean():.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (mean over categories)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
