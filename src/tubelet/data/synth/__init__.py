"""Procedural synthetic video instance segmentation benchmark (YouTube-VIS format).

Written layout (``tubelet synth OUT_DIR`` or :func:`write_dataset`)::

    OUT_DIR/<split>/JPEGImages/<video_name>/00000.jpg, 00001.jpg, ...
    OUT_DIR/<split>/instances.json     # YouTube-VIS GT, written last (marks the split complete)

``instances.json``: ``videos`` (file_names relative to JPEGImages), ``categories`` (with extra keys
``shape``, ``texture`` and ``confusable_with``), ``annotations`` (compressed-RLE ``segmentations``,
``areas``, ``bboxes``, ``iscrowd`` 0; ``null`` where the instance is not born, out of frame, fully
occluded or below ``min_area``), and ``info`` (seed, split, full config, confusable pairs).

Presets: ``tiny`` (64x96, 4-8 frames, train 4 / valid 2 videos), ``bench`` (192x320, 10-40 frames,
train 300 / valid 50 videos), ``long`` (192x320, valid 1 video of 2000 frames). What makes VIS hard
is a knob of :class:`SynthConfig` each: confusable categories (:data:`CONFUSABLE_PAIRS`),
look-alike instances, accelerating / rotating / scaling motion, camera pan and zoom, scheduled
full occlusions, enter / leave, mid-video births, clutter, distractors, lighting drift, long videos.

Five-line use::

    from tubelet.data.synth import preset, apply_overrides, generate_video, write_dataset
    cfg = apply_overrides(preset("tiny"), ["max_frames=6"])
    for frame in generate_video(cfg, seed=0, index=0):       # streams SynthFrame objects
        print(frame.index, frame.image.shape, [(i, c, m is not None) for i, c, m in frame.instances])
    write_dataset("/tmp/synth", cfg, seed=0)                  # {"train": .../instances.json, ...}

The same (config, seed) gives the same bytes; video ``index`` is generated from
``numpy.random.default_rng([seed, index])`` alone (split k's i-th video uses index
``k * 1_000_000 + i``).
"""
from tubelet.data.synth.config import PRESETS, SynthConfig, apply_overrides, config_dict, preset, validate
from tubelet.data.synth.render import SynthFrame, generate_video, video_length
from tubelet.data.synth.shapes import CATEGORIES, CONFUSABLE_PAIRS, Category, confusable_with
from tubelet.data.synth.writer import SPLIT_STRIDE, video_index, write_dataset

__all__ = ["PRESETS", "SynthConfig", "apply_overrides", "config_dict", "preset", "validate",
           "SynthFrame", "generate_video", "video_length", "CATEGORIES", "CONFUSABLE_PAIRS",
           "Category", "confusable_with", "SPLIT_STRIDE", "video_index", "write_dataset"]
