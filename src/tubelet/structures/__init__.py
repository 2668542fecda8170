"""Core data structures: COCO RLE helpers, per-frame detections, video instances."""
from tubelet.structures.rle import (area, decode, decode_many, encode, encode_many, to_rle,
                                    empty_rle)
from tubelet.structures.instances import FrameInstances, VideoInstances

__all__ = ["area", "decode", "decode_many", "encode", "encode_many", "to_rle", "empty_rle",
           "FrameInstances", "VideoInstances"]
