"""Pure, model-agnostic ops: mask IoU, sequence IoU, sequence scoring, (soft) sequence NMS.

Every method in tubelet uses these functions; none keeps its own copy.
"""
from tubelet.ops.mask_iou import (dense_intersections, mask_iou, mask_iou_dense, mask_iou_rle,
                                  rle_intersections)
from tubelet.ops.seq_iou import sequence_iou, sequence_iou_dense, sequence_iou_rle
from tubelet.ops.seq_nms import (SequenceScores, SoftNMSPick, category_aware_soft_nms, mask_nms,
                                 nms_from_iou, sequence_nms, sequence_scores)
from tubelet.ops.hungarian import hungarian
from tubelet.ops.key_frames import key_frames
from tubelet.ops.reduce import ReduceConfig, ReducedRecord, reduce_sequences

__all__ = ["dense_intersections", "mask_iou", "mask_iou_dense", "mask_iou_rle",
           "rle_intersections", "sequence_iou", "sequence_iou_dense", "sequence_iou_rle",
           "SequenceScores", "SoftNMSPick", "category_aware_soft_nms", "mask_nms", "nms_from_iou",
           "sequence_nms", "sequence_scores", "hungarian", "key_frames", "ReduceConfig", "ReducedRecord", "reduce_sequences"]
