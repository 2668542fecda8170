"""Simulated detector output for benchmarking the reduction and association algorithms.

From ground-truth masks, emit what a real segmenter would: Propose-Reduce sequence proposals
(:mod:`.proposals`) and per-frame detections with embeddings and IAI identity probabilities
(:mod:`.detections`), under a seeded, documented noise model (:mod:`.noise`); score trackers by
identity switches (:mod:`.metrics`). ``bench/sim_reduce_track.py`` runs the whole benchmark::

    from tubelet.sim import DetectionNoise, Embedder, rng_for, simulate_detections
    emb = Embedder(category_ids, pairs, DetectionNoise().embedding, seed=0)
    frames = simulate_detections(gt_masks, gt_labels, category_ids, pairs, DetectionNoise(),
                                 emb, rng_for(0, 2, video_id))   # T SimFrame objects
"""
from tubelet.sim.detections import (DetectionNoise, IdHeadNoise, SimFrame, SimulatedIdHead,
                                    simulate_detections)
from tubelet.sim.metrics import SwitchStats, close_encounters, identity_switches
from tubelet.sim.noise import (Embedder, EmbeddingNoise, MaskNoise, ellipse_mask, partner_map,
                               perturb_mask, random_blob, rng_for, touching)
from tubelet.sim.proposals import ProposalNoise, Proposals, key_frames, simulate_proposals

__all__ = ["DetectionNoise", "IdHeadNoise", "SimFrame", "SimulatedIdHead", "simulate_detections",
           "SwitchStats", "close_encounters", "identity_switches", "Embedder", "EmbeddingNoise",
           "MaskNoise", "ellipse_mask", "partner_map", "perturb_mask", "random_blob", "rng_for",
           "touching", "ProposalNoise", "Proposals", "key_frames", "simulate_proposals"]
