"""tubelet: video instance segmentation toolkit.

Public entry points::

    from tubelet.structures import VideoInstances
    from tubelet.data.ytvis import load_ytvis, load_results
    from tubelet.eval import evaluate
"""
__version__ = "0.1.0"
