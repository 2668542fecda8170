"""The Python API in five names (re-exported lazily by ``tubelet``)::

    import tubelet
    model = tubelet.load_model()                          # bundled "objects" model (real footage)
    model = tubelet.load_model("synth")                   # or "run/last.pt", any weights file
    video = tubelet.predict(model, "clip.mp4")            # VideoInstances (per-track RLE masks)
    for fr in tubelet.stream(model, "clip.mp4"):          # FrameOutput per frame, as it is known
        print(fr.index, fr.track_ids, fr.scores)
    tubelet.list_methods()                                # registered method names
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

from tubelet.methods import FrameOutput, VISMethod, list_methods
from tubelet.structures import VideoInstances

__all__ = ["load_model", "predict", "stream", "list_methods"]


def load_model(weights: str | Path | None = None, config: str | None = None,
               overrides: Sequence[str] = (), fuse: bool = True) -> VISMethod:
    """A method ready for inference: ``weights`` (a checkpoint or exported file, or the name of a
    bundled model: ``"objects"``, the default, for real footage, class-agnostic; ``"synth"`` for
    the synthetic benchmark's shapes), its stored config or ``config``, ``key=value``
    ``overrides`` (e.g. ``["model.tracker=greedy"]``). ``fuse`` folds BatchNorm for speed."""
    from tubelet.engine.loading import MODELS, bundled_model, load_method
    weights = "objects" if weights is None else weights
    if isinstance(weights, str) and weights in MODELS:
        weights = bundled_model(weights)
    model, _ = load_method(config, str(weights), overrides, fuse)
    return model


def _open(video: Any):
    from tubelet.video import as_video
    return as_video(video)


def stream(model: VISMethod, video: Any) -> Iterator[FrameOutput]:
    """Per-frame outputs of ``model`` on ``video`` (a path, a VideoSource, a list or array of
    RGB uint8 frames), yielded as soon as each is known."""
    import torch
    src = _open(video)
    try:
        with torch.inference_mode():
            yield from model.predict_video(src)
    finally:
        if hasattr(src, "close"):
            src.close()


def predict(model: VISMethod, video: Any) -> VideoInstances:
    """The video-level result of ``model`` on ``video`` (see :func:`stream` for the inputs)."""
    import torch
    src = _open(video)
    try:
        with torch.inference_mode():
            return model.predict_video(src).result()
    finally:
        if hasattr(src, "close"):
            src.close()
