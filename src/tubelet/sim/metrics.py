"""Identity switches of predicted tracks against the ground truth, and same-class encounters.

**Identity switches** (the definition reported by ``bench/sim_reduce_track.py``): in every frame
t, each GT instance g with a mask there is matched to the predicted record with the highest mask
IoU with it, if that IoU is ``>= iou_thr`` (0.5; ties go to the lower record index). A GT
instance whose matched frames involve more than one predicted track id is one
*switch-instance*; the count of switch-instances is the ``switches`` number. Records sharing a
track id (one record per (track, class)) are one track. GT frames without a match (missed, or
covered by a mask of IoU < ``iou_thr``) are skipped, so a track that is lost and later resumed
under the *same* id is not a switch, one resumed under a new id is. ``id_changes`` also counts
every change of matched id between consecutive matched frames (a GT that goes A, B, A has 1
switch-instance and 2 id changes). Each id change is further classed as a **swap** when the
new track had been matched to a *different* GT instance in an earlier frame (the identity was
taken from another object), else as a **fragment** (a new or spare track continues the object);
``swap_instances`` counts GT instances with at least one swap.

**Encounters**: two GT instances of the same category (or of a confusable pair) whose tight
boxes overlap with box IoU ``>= box_iou`` in some frame where both are visible: the situations
where a mask-IoU tracker may swap look-alikes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tubelet.ops.mask_iou import mask_iou_rle
from tubelet.sim.noise import partner_map
from tubelet.structures.instances import VideoInstances


@dataclass
class SwitchStats:
    """Identity-switch counts (module docstring); ``+`` adds the counts of two videos."""
    gt_instances: int = 0  # GT instances (with at least one non-empty frame)
    gt_matched: int = 0  # ... with at least one matched frame
    switches: int = 0  # switch-instances: matched frames involve > 1 track id
    id_changes: int = 0  # matched-id changes between consecutive matched frames
    swaps: int = 0  # ... to a track matched to another GT instance in an earlier frame
    swap_instances: int = 0  # GT instances with at least one swap
    gt_frames: int = 0  # non-empty GT frames
    matched_frames: int = 0  # ... matched to a record with IoU >= iou_thr
    matched_ids: list[list[int]] = field(default_factory=list)  # per GT: [T] id or -1

    def __add__(self, other: "SwitchStats") -> "SwitchStats":
        return SwitchStats(self.gt_instances + other.gt_instances,
                           self.gt_matched + other.gt_matched, self.switches + other.switches,
                           self.id_changes + other.id_changes, self.swaps + other.swaps,
                           self.swap_instances + other.swap_instances,
                           self.gt_frames + other.gt_frames,
                           self.matched_frames + other.matched_frames,
                           self.matched_ids + other.matched_ids)

    def summary(self) -> dict:
        """JSON-ready counts (no per-frame ids) and the rate switches / matched GT."""
        return {"gt_instances": self.gt_instances, "gt_matched": self.gt_matched,
                "switches": self.switches, "id_changes": self.id_changes, "swaps": self.swaps,
                "swap_instances": self.swap_instances,
                "switch_rate": self.switches / self.gt_matched if self.gt_matched else 0.0,
                "gt_frames": self.gt_frames, "matched_frames": self.matched_frames}


def identity_switches(gt_tracks: Sequence[Sequence[dict | None]], pred: VideoInstances,
                      iou_thr: float = 0.5) -> SwitchStats:
    """Identity switches of one video's predicted tracks (module docstring).

    Args:
        gt_tracks: N GT instances, each T compressed RLEs or None (absent).
        pred: the predicted :class:`VideoInstances` (masks, ``track_ids``) of the same T.
        iou_thr: a GT frame is matched only to a record with mask IoU ``>= iou_thr``.
    """
    n = len(gt_tracks)
    length = pred.length
    if any(len(s) != length for s in gt_tracks):
        raise ValueError(f"identity_switches: GT tracks must have T = {length} frames")
    ids = np.full((n, length), -1, dtype=np.int64)  # [N, T] matched track id
    present = np.zeros((n, length), dtype=bool)
    for t in range(length):
        gt_t = [s[t] for s in gt_tracks]
        present[:, t] = [r is not None for r in gt_t]
        if len(pred) == 0 or not present[:, t].any():
            continue
        iou = mask_iou_rle(gt_t, pred.frame(t))  # [N, M]
        best = iou.argmax(1)  # first maximum: lower record index on ties
        ok = (iou[np.arange(n), best] >= iou_thr) & present[:, t]
        ids[ok, t] = pred.track_ids[best[ok]]
    first: dict[tuple[int, int], int] = {}  # (track id, GT index) -> first matched frame
    for g, t in zip(*np.nonzero(ids >= 0)):
        key = (int(ids[g, t]), int(g))
        first[key] = min(first.get(key, length), int(t))
    out = SwitchStats()
    for g in range(n):
        frames = np.nonzero(ids[g] >= 0)[0]
        seq = ids[g, frames]
        n_swaps = sum(any(h != g and first.get((int(b), h), length) < t for h in range(n))
                      for a, b, t in zip(seq[:-1], seq[1:], frames[1:]) if a != b)
        out.swaps += n_swaps
        out.swap_instances += int(n_swaps > 0)
        if present[g].any():
            out.gt_instances += 1
        out.gt_frames += int(present[g].sum())
        out.matched_frames += len(seq)
        if len(seq):
            out.gt_matched += 1
            out.switches += int(len(set(seq.tolist())) > 1)
            out.id_changes += int((seq[1:] != seq[:-1]).sum())
        out.matched_ids.append(ids[g].tolist())
    return out


def _boxes(masks: np.ndarray) -> np.ndarray:
    """``[N, T, 4]`` (y0, x0, y1, x1) half-open tight boxes of ``[N, T, H, W]``; NaN if empty."""
    n, t = masks.shape[:2]
    out = np.full((n, t, 4), np.nan)
    rows, cols = masks.any(3), masks.any(2)  # [N, T, H], [N, T, W]
    for i in range(n):
        for k in range(t):
            r, c = np.flatnonzero(rows[i, k]), np.flatnonzero(cols[i, k])
            if len(r):
                out[i, k] = (r[0], c[0], r[-1] + 1, c[-1] + 1)
    return out


def close_encounters(gt_masks: np.ndarray, labels: Sequence[int],
                     pairs: Sequence[tuple[int, int]] = (), box_iou: float = 0.1
                     ) -> list[tuple[int, int, int]]:
    """Same-category (or confusable-pair) GT pairs whose boxes meet (module docstring).

    Args:
        gt_masks: ``[N, T, H, W]`` bool.
        labels: ``[N]`` category ids.
        pairs: confusable category pairs (their members count as the same category here).
        box_iou: a pair encounters when its box IoU is ``>= box_iou`` in some frame.
    Returns:
        ``(i, j, t)`` with i < j and t the first such frame, sorted by (i, j).
    """
    masks = np.asarray(gt_masks, dtype=bool)
    labels = [int(x) for x in labels]
    partner = partner_map(pairs)
    boxes = _boxes(masks)  # [N, T, 4]
    out = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] != labels[j] and partner.get(labels[i]) != labels[j]:
                continue
            a, b = boxes[i], boxes[j]  # [T, 4]
            ih = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
            iw = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
            inter = np.clip(ih, 0, None) * np.clip(iw, 0, None)  # NaN where either is empty
            union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + \
                (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
            with np.errstate(invalid="ignore"):
                hit = np.nonzero(inter / union >= box_iou)[0]
            if len(hit):
                out.append((i, j, int(hit[0])))
    return out


__all__ = ["SwitchStats", "identity_switches", "close_encounters"]
