"""The method side of IAI's inference: what the model's detections become for the tracker, and
how the tracker's identities become the ID slots the memory is written with.

Who does which inference rule (REFERENCE_NOTES §3, no rule implemented twice):

* the model (:meth:`tubelet.models.iai.IAICondInst.detect` with
  :func:`~tubelet.models.iai.select_iai_candidates` and :func:`~tubelet.models.iai.paint_masks`):
  class > 0.1 and ID > 0.1, ranking ``(cls + 0.5 id) * ctr`` on frame 0 and
  ``(0.5 cls + id) * ctr`` after, class-agnostic NMS 0.5, top 10, painting with the 90 % rule;
* this module: the per-detection class scores handed on are class probability x centerness
  (:func:`to_frame_instances`), since the video-level score is "class probability x centerness
  averaged over all frames";
* the tracker (:class:`tubelet.trackers.iai_assign.IAIAssigner`): the Hungarian ID assignment,
  the discarded newcomers once every slot is taken, and the video output (per ID, the class scores
  summed over the frames and divided by T; the top 10 (ID, class) pairs > 0.05);
* :class:`SlotMap`: tracker identity -> ID slot for the memory write.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tubelet.models.iai.postprocess import IAIDetections
from tubelet.structures import FrameInstances


def to_frame_instances(det: IAIDetections, category_ids: Sequence[int]) -> FrameInstances:
    """One frame's :class:`IAIDetections` (K detections, C classes, N slots) -> FrameInstances.

    Args:
        det: the model's detections, best first; masks ``[K, H, W]`` at the output size.
        category_ids: ``[C]`` dataset category id of each class column.

    Returns:
        FrameInstances with ``scores`` the ranking score ``[K]``, ``labels`` the dataset id of the
        most probable class ``[K]``, ``class_probs`` = class probability x centerness ``[K, C]``,
        ``id_probs`` ``[K, N]`` and ``boxes`` ``[K, 4]``, in the detections' (rank) order.
    """
    cats = np.asarray(category_ids, dtype=np.int64)
    class_probs = det.class_probs.float() * det.centerness.float()[:, None]  # [K, C]
    return FrameInstances(
        masks=det.masks.cpu().numpy(), scores=det.scores.float().cpu().numpy(),
        labels=cats[det.labels.cpu().numpy()], class_probs=class_probs.cpu().numpy(),
        boxes=det.boxes.float().cpu().numpy(), id_probs=det.id_probs.float().cpu().numpy())


class SlotMap:
    """Tracker identity -> ID slot 0..N-2, handed out in order of first appearance.

    The IAI assigner already hands out its IDs 0, 1, 2, ... in that order (a new ID is S, the
    count so far, in the detections' order), so for it the map is the identity; trackers with
    other identities (greedy, naive) get slots the same way. An identity that arrives after every
    slot is taken gets none (-1): it is never written to the memory, as IAI discards newcomers
    once S = N-1.

    Args:
        num_ids: N, slots including "new" (slot N-1 is never handed out).
    """

    def __init__(self, num_ids: int):
        if num_ids < 2:
            raise ValueError(f"num_ids must be >= 2 (one ID and 'new'), got {num_ids}")
        self.num_ids = num_ids
        self.slot_of: dict[int, int] = {}

    def __call__(self, track_ids: np.ndarray) -> np.ndarray:
        """track_ids ``[K]`` int (-1: dropped by the tracker) -> slots ``[K]`` int64 (-1: none)."""
        out = np.full(len(track_ids), -1, dtype=np.int64)
        for i, tid in enumerate(np.asarray(track_ids, dtype=np.int64).tolist()):
            if tid < 0:
                continue
            if tid not in self.slot_of:
                free = len(self.slot_of) < self.num_ids - 1
                # a late identity is recorded with -1 so it never takes a slot freed by nobody
                self.slot_of[tid] = len(self.slot_of) if free else -1
            out[i] = self.slot_of[tid]
        return out
