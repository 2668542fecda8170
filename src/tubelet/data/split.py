"""Reproducible train/validation split of a YouTube-VIS ground truth by video.

The official validation ground truth is not public, so local validation needs a held-out part of
the training set: ``train_sub`` and ``valid_sub``.
"""
from __future__ import annotations

import numpy as np


def split_by_video(data: dict, val_fraction: float = 0.1, seed: int = 0) -> tuple[dict, dict]:
    """Split a YouTube-VIS GT dict into (train_sub, valid_sub) by video id.

    The permutation depends only on the sorted video ids and the seed, so the same file and seed
    always give the same split. At least one video goes to each side when there are two or more.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ids = sorted(v["id"] for v in data["videos"])
    if len(ids) < 2:
        raise ValueError(f"need at least 2 videos to split, found {len(ids)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_val = min(max(1, int(round(val_fraction * len(ids)))), len(ids) - 1)
    val_ids = {ids[i] for i in order[:n_val]}
    return (videos_where(data, lambda i: i not in val_ids),
            videos_where(data, lambda i: i in val_ids))


def videos_where(data: dict, keep) -> dict:
    """The GT dict restricted to the videos whose id passes ``keep`` (and their annotations);
    every other top-level key is kept as is."""
    out = {k: v for k, v in data.items() if k not in ("videos", "annotations")}
    out["videos"] = [v for v in data["videos"] if keep(v["id"])]
    out["annotations"] = [a for a in data.get("annotations", []) if keep(a["video_id"])]
    return out
