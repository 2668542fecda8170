"""tubelet: video instance segmentation toolkit.

Public entry points (imported lazily, so ``tubelet --help`` stays fast)::

    import tubelet
    model = tubelet.load_model()                  # bundled "objects" model; or "synth", "runs/x/last.pt"
    video = tubelet.predict(model, "clip.mp4")    # VideoInstances; tubelet.stream(...) per frame

    from tubelet.data.ytvis import load_ytvis, load_results
    from tubelet.eval import evaluate
"""
__version__ = "0.1.0"

__all__ = ["load_model", "predict", "stream", "list_methods"]


def __getattr__(name: str):
    if name in __all__:
        from tubelet import api
        return getattr(api, name)
    raise AttributeError(f"module 'tubelet' has no attribute {name!r}")
