"""Simulated-detector benchmark of the sequence reduction and the trackers.

    python bench/sim_reduce_track.py [--seed 0] [--videos 50] [--crossing-videos 20] [--quick]
                                     [--markdown PATH]

Ground truth: the ``bench`` preset's valid split of the synthetic generator
(:mod:`tubelet.data.synth`), generated in memory frame by frame (no JPEG is written), plus a
*crossing* subset: the same preset with every instance of a video in one category
(``CROSSING_OVERRIDES``), so look-alikes cross each other often. The detector output is simulated
from it with the seeded noise model of :mod:`tubelet.sim` (parameters in the JSON):

1. **Reduction** (Propose-Reduce, Table 1c/1d of the 2021 category-aware paper): K x O simulated
   sequence proposals, scored with :func:`tubelet.ops.sequence_scores`, reduced by
   :func:`tubelet.ops.reduce_sequences` under each setting of ``REDUCTIONS``. "none" applies no
   NMS at all and outputs, like the agnostic-only rows of Table 1c (Sec. 3.1: "preserved
   sequences are assigned with categories and corresponding scores"), one record per (proposal,
   class) with class score > 0.05. "aware" is the released code's Gaussian soft-NMS (σ = 0.5);
   the paper's text says "soft NMS of 0.5 IoU threshold", reported as the ``linear`` row.
2. **Tracking**: the same simulated per-frame detections go to every tracker of
   :mod:`tubelet.trackers`. IAI gets its method's pre-assignment filter (score > 0.1,
   class-agnostic mask NMS 0.5, top 10; reference notes §3) and ID probabilities from
   :class:`tubelet.sim.SimulatedIdHead`. AP / AR@10 by :func:`tubelet.eval.evaluate`; identity
   switches by :func:`tubelet.sim.identity_switches` (definition there), on all GT instances
   and on those in a same-class encounter (:func:`tubelet.sim.close_encounters`).
3. **Speed**: category-aware soft-NMS on 100 sequences x 36 frames at 720x1280 (sequence IoU from
   RLE included), and one tracker update with 100 detections against 50 tracks at 192x320;
   best of ``--repeats`` runs.

Prints one JSON object on stdout; the markdown tables go to ``--markdown`` or stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_bench_parts import (CROSSING_OVERRIDES, REDUCTIONS, TRACKERS, judge, markdown,  # noqa: E402
                             run_reduction, run_speed, run_tracking, synth_ground_truth)

from tubelet.data.synth import CONFUSABLE_PAIRS, apply_overrides, config_dict, preset  # noqa: E402
from tubelet.sim import DetectionNoise, IdHeadNoise, ProposalNoise  # noqa: E402
from tubelet.utils.fileio import write_text  # noqa: E402
