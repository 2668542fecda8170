"""Configuration of the synthetic VIS benchmark: one dataclass, three presets, ``key=value`` overrides.

Lengths are relative to the frame height ``H`` (sizes, speeds, pan) so a preset keeps its look at
any resolution. Presets (exact sizes):

* ``tiny``:  64x96 frames, 4-8 frames per video, splits train=4, valid=2 videos (for tests).
* ``bench``: 192x320 frames, 10-40 frames per video, splits train=300, valid=50 videos.
* ``long``:  192x320 frames, one split valid=1 video of exactly 2000 frames (``length=200`` etc.).

``--videos N`` on the CLI (``videos=`` in :func:`~tubelet.data.synth.writer.write_dataset`)
replaces every split's count by N.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

from tubelet.errors import InputError


@dataclass(frozen=True)
class SynthConfig:
    # --- layout
    height: int = 192                    # frame height H in pixels
    width: int = 320                     # frame width W in pixels
    splits: tuple[str, ...] = ("train", "valid")   # split folders written under OUT_DIR
    split_videos: tuple[int, ...] = (300, 50)      # videos per split (same order as splits)
    min_frames: int = 10                 # shortest video (frames)
    max_frames: int = 40                 # longest video (frames), length ~ U{min, max}
    length: int = 0                      # > 0: every video has exactly this many frames
    jpeg_quality: int = 92               # JPEG quality of the written frames
    # --- instances
    min_instances: int = 2               # annotated instances per video (before scheduled occluders)
    max_instances: int = 6
    same_category_prob: float = 0.4      # an instance copies the category of an earlier one:
    #                                      look-alikes whose identity must come from motion
    instance_color_jitter: float = 0.03  # per-instance RGB jitter (std, fraction of 255): small,
    #                                      so same-category instances are nearly identical
    video_color_jitter: float = 0.06     # per-video shift of each category palette (std)
    min_size: float = 0.07               # object radius (circumscribed), fraction of H
    max_size: float = 0.16
    # --- motion (per frame; lengths in fractions of H)
    max_speed: float = 0.03              # speed cap
    max_accel: float = 0.004             # acceleration magnitude, redrawn every ~accel_every frames
    accel_every: int = 12                # mean frames between acceleration changes
    max_rot_speed: float = 0.08          # |rotation| in radians per frame
    max_scale_rate: float = 0.02         # |d log(size) / frame|; size bounces in [0.7 min, 1.3 max]
    birth_prob: float = 0.25             # an instance first appears at a frame > 0 (mid-video birth)
    exit_prob: float = 0.3               # an instance roams a box larger than the frame: it enters
    #                                      and leaves the frame (others stay inside the view)
    # --- occlusion
    full_occlusion_prob: float = 0.35    # per staying instance and per occlusion_period frames: an
    #                                      occluder is scheduled to pass fully over it
    occlusion_period: int = 100          # frames per full-occlusion slot (long videos get several)
    min_occluded_frames: int = 2         # frames fully hidden by a scheduled occluder
    max_occluded_frames: int = 5
    min_area: int = 12                   # visible fragments smaller than this (pixels) are null
    min_distractors: int = 0             # shapes of no category (never annotated) per video
    max_distractors: int = 3
    # --- background, camera, lighting
    bg_clutter: int = 14                 # random static shapes painted on the background
    bg_noise: float = 0.06               # background noise amplitude (fraction of 255)
    bg_gradient: float = 0.5             # background colour gradient strength in [0, 1]
    camera_pan: float = 0.1              # max camera pan amplitude (fraction of H)
    camera_zoom: float = 0.12            # max |log zoom| of the camera
    light_gain_drift: float = 0.2        # amplitude of the global gain drift (1 +- this)
    light_color_drift: float = 0.06      # amplitude of per-channel gain drift (colour cast)
    light_offset_drift: float = 0.06     # amplitude of the global offset drift (fraction of 255)
    frame_noise: float = 0.012           # per-frame sensor noise std (fraction of 255)

    def split_counts(self) -> dict[str, int]:
        return dict(zip(self.splits, self.split_videos))


_PROBS = ("same_category_prob", "birth_prob", "exit_prob", "full_occlusion_prob", "bg_gradient")
_NONNEG = ("instance_color_jitter", "video_color_jitter", "max_speed", "max_accel",
           "max_rot_speed", "max_scale_rate", "min_area", "min_instances", "min_distractors",
           "bg_clutter", "bg_noise", "camera_pan", "camera_zoom", "light_gain_drift",
           "light_color_drift", "light_offset_drift", "frame_noise", "length")


def validate(cfg: SynthConfig, record: str = "config") -> SynthConfig:
    """Check ranges; raise :class:`InputError` naming the field at fault. Returns ``cfg``."""
    def bad(fld: str, msg: str):
        raise InputError(msg, None, record, fld)

    for name, val in dataclasses.asdict(cfg).items():
        if isinstance(val, float) and not math.isfinite(val):
            bad(name, f"not a finite number ({val})")
    if cfg.height < 16 or cfg.width < 16:
        bad("height/width", f"frame size {cfg.height}x{cfg.width} must be at least 16x16")
    for name in _PROBS:
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            bad(name, f"must be in [0, 1], got {getattr(cfg, name)}")
    for name in _NONNEG:
        if getattr(cfg, name) < 0:
            bad(name, f"must be >= 0, got {getattr(cfg, name)}")
    if cfg.min_frames < 1:
        bad("min_frames", f"must be >= 1, got {cfg.min_frames}")
    pairs = [("min_frames", "max_frames"), ("min_instances", "max_instances"),
             ("min_size", "max_size"), ("min_occluded_frames", "max_occluded_frames"),
             ("min_distractors", "max_distractors")]
    for lo, hi in pairs:
        if getattr(cfg, lo) > getattr(cfg, hi):
            bad(hi, f"must be >= {lo} ({getattr(cfg, lo)}), got {getattr(cfg, hi)}")
    if not 0.0 < cfg.min_size <= 0.5:
        bad("min_size", f"must be in (0, 0.5], got {cfg.min_size}")
    if cfg.max_size > 0.5:
        bad("max_size", f"must be <= 0.5, got {cfg.max_size}")
    if cfg.min_occluded_frames < 1:
        bad("min_occluded_frames", f"must be >= 1, got {cfg.min_occluded_frames}")
    if cfg.accel_every < 1 or cfg.occlusion_period < 1:
        bad("accel_every/occlusion_period", "must be >= 1")
    if not 1 <= cfg.jpeg_quality <= 100:
        bad("jpeg_quality", f"must be in [1, 100], got {cfg.jpeg_quality}")
    if not cfg.splits or len(cfg.splits) != len(cfg.split_videos):
        bad("split_videos", f"needs one count per split: {len(cfg.splits)} splits "
                            f"{list(cfg.splits)}, {len(cfg.split_videos)} counts")
    for s in cfg.splits:
        if not s or "/" in s or s.startswith(".") or s != s.strip():
            bad("splits", f"bad split name {s!r}")
    if len(set(cfg.splits)) != len(cfg.splits):
        bad("splits", f"duplicate split names {list(cfg.splits)}")
    if any(n < 0 for n in cfg.split_videos):
        bad("split_videos", f"counts must be >= 0, got {list(cfg.split_videos)}")
    return cfg


# ----------------------------------------------------------------------------------- presets
def _tiny() -> SynthConfig:
    return SynthConfig(height=64, width=96, split_videos=(4, 2), min_frames=4, max_frames=8,
                       min_instances=2, max_instances=4, bg_clutter=6, max_distractors=2)


def _bench() -> SynthConfig:
    return SynthConfig()


def _long() -> SynthConfig:
    return SynthConfig(splits=("valid",), split_videos=(1,), length=2000)


PRESETS: dict[str, typing.Callable[[], SynthConfig]] = {"tiny": _tiny, "bench": _bench, "long": _long}


def preset(name: str) -> SynthConfig:
    """The named preset (``tiny``, ``bench`` or ``long``); unknown names raise InputError."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}",
                         None, None, "preset")
    return PRESETS[name]()


# ----------------------------------------------------------------------------------- overrides
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(kind: typing.Any, text: str, record: str, key: str) -> typing.Any:
    origin = typing.get_origin(kind)
    if origin is tuple:
        (elem, _) = typing.get_args(kind)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return tuple(_parse(elem, p, record, key) for p in parts)
    if kind is str:
        return text
    try:
        if kind is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        if kind is int:
            return int(text)
        if kind is float:
            val = float(text)
            if not math.isfinite(val):
                raise ValueError(text)
            return val
    except ValueError:
        pass
    else:
        raise InputError(f"unsupported field type {kind!r}", None, record, key)
    words = {bool: "a boolean (true/false)", int: "an integer", float: "a finite number"}
    raise InputError(f"expected {words.get(kind, kind)}, got {text!r}", None, record, key)


def apply_overrides(cfg: SynthConfig, overrides: typing.Iterable[str]) -> SynthConfig:
    """Return a copy of ``cfg`` with ``key=value`` overrides applied and validated.

    Values are parsed by the field's type: ints, finite floats, booleans, comma-separated tuples
    (``splits=train,valid split_videos=10,5``). Unknown keys and unparsable values raise
    :class:`InputError` naming the override and the field.
    """
    hints = typing.get_type_hints(SynthConfig)
    names = [f.name for f in dataclasses.fields(SynthConfig)]
    changes: dict[str, typing.Any] = {}
    for item in overrides:
        record = f"override {item!r}"
        if "=" not in item:
            raise InputError("expected key=value", None, record)
        key, text = (s.strip() for s in item.split("=", 1))
        if key not in hints:
            raise InputError(f"unknown key; valid keys: {', '.join(names)}", None, record, key)
        changes[key] = _parse(hints[key], text, record, key)
    return validate(dataclasses.replace(cfg, **changes),
                    record="overrides" if changes else "config")


def config_dict(cfg: SynthConfig) -> dict:
    """JSON-ready dict of ``cfg`` (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


__all__ = ["SynthConfig", "PRESETS", "preset", "apply_overrides", "validate", "config_dict"]
