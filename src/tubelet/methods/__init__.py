"""VIS methods, one folder each, on one interface (:mod:`tubelet.methods.base`).

Importing this package registers every method; the engine, CLI and API find them here:

    from tubelet.methods import build_method, list_methods
"""
from tubelet.methods.registry import (MethodSpec, build_method, get_method, list_methods,
                                      register_method)
from tubelet.methods.base import FrameOutput, VideoStream, VISMethod
from tubelet.methods.track_by_detect import OnlineConfig, TrackByDetect
from tubelet.methods import condinst_track  # noqa: F401  (registers "condinst-track")
from tubelet.methods import contrastive_online  # noqa: F401  (registers "contrastive-online")
from tubelet.methods import iai_condinst  # noqa: F401  (registers "iai-condinst")
from tubelet.methods import propose_reduce  # noqa: F401  (registers "propose-reduce")
from tubelet.methods import yolov4_seg  # noqa: F401  (registers "yolov4-seg")

__all__ = ["MethodSpec", "build_method", "get_method", "list_methods", "register_method",
           "FrameOutput", "VideoStream", "VISMethod", "OnlineConfig", "TrackByDetect"]
