"""Online association with explicit state: ``reset() / update(frame) -> FrameResult /
finalize() -> VideoInstances``.

Registered trackers (``build_tracker(name, **cfg)``; ``check_tracker(name, provides)`` checks a
name, and that a model fills the ``FrameInstances`` fields the tracker ``requires``, before any
frame):

- ``"greedy"``: YOLOv4+1seg gating + Best Friend + Lonely Best Friend (:mod:`.greedy`).
- ``"memory"``: contrastive memory bank with bi-softmax (:mod:`.memory_bank`).
- ``"iai"``: IAI Hungarian identity assignment over predicted ID probabilities (:mod:`.iai_assign`).
- ``"naive"``: greedy mask-IoU argmax baseline (:mod:`.naive`).
- ``"none"``: no association, each detection its own track (:mod:`.per_frame`).
"""
from tubelet.trackers.base import (ClassScoreSum, FrameResult, Track, Tracker, build_tracker,
                                   check_tracker, detection_class_scores, list_trackers,
                                   majority_label, register_tracker, tracker_config_class)
from tubelet.trackers.greedy import GreedyConfig, GreedyTracker, greedy_associate
from tubelet.trackers.memory_bank import (MemoryBankTracker, MemoryConfig, bi_softmax,
                                          memory_embedding)
from tubelet.trackers.iai_assign import IAIAssigner, IAIConfig, assign_ids
from tubelet.trackers.naive import NaiveConfig, NaiveTracker
from tubelet.trackers.per_frame import PerFrameConfig, PerFrameTracker

__all__ = ["ClassScoreSum", "FrameResult", "Track", "Tracker", "build_tracker", "check_tracker",
           "detection_class_scores", "list_trackers", "majority_label", "register_tracker",
           "tracker_config_class", "GreedyConfig", "GreedyTracker",
           "greedy_associate", "MemoryBankTracker", "MemoryConfig", "bi_softmax",
           "memory_embedding", "IAIAssigner", "IAIConfig", "assign_ids", "NaiveConfig",
           "NaiveTracker", "PerFrameConfig", "PerFrameTracker"]
