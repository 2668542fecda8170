"""``yolov4-seg``: YOLOv4+1seg per frame + the greedy BF/LBF tracker (Rossetti et al. 2021)."""
from tubelet.methods.yolov4_seg.config import YOLOv4SegMethodConfig
from tubelet.methods.yolov4_seg.data import LetterboxFrameDataset, YOLOAugConfig
from tubelet.methods.yolov4_seg.method import YOLOv4SegMethod

__all__ = ["YOLOv4SegMethodConfig", "YOLOv4SegMethod", "LetterboxFrameDataset", "YOLOAugConfig"]
