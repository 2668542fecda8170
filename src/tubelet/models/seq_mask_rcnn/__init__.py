"""Seq Mask R-CNN (Propose-Reduce, Lin et al. ICCV 2021): the model pieces.

- :class:`FrameMaskRCNN` / :class:`MaskRCNNConfig`: per-frame Mask R-CNN whose one forward gives
  losses or detections plus the features (C2, C3, P2) the Seq-Prop head needs;
  ``classify_boxes`` for the sequence score, ``mask_probs_for_boxes`` for memory masks.
- :class:`SeqPropHead` / :class:`SeqPropConfig`: the STM-style propagation head;
  :func:`memory_read` its attention read.
- :func:`soft_aggregate`, :func:`soft_iou_loss`: supplementary Eqs. (1) and (2);
  :func:`soft_aggregate_ce_loss`: STM's cross-entropy on Eq. (1) in log space (an option).
- :class:`PropagationMemory`: a bounded memory for one propagation pass.
- :func:`mask_boxes`: tight box + 1 px of propagated masks (sequence score).

    rcnn = FrameMaskRCNN.from_config(MaskRCNNConfig.cpu())
    prop = SeqPropHead.from_config(SeqPropConfig.cpu())
    out = rcnn.eval()(frames)                    # out.detections, out.features (B frames)
    f0, f1 = out.features.frames(0), out.features.frames(1)
    keys, values = prop.encode_memory(f0.p2, key_masks)  # [K, D_k, h, w], [K, D_v, h, w]
    probs = prop(keys[:, :, None], values[:, :, None], f1.p2, f1.c3, f1.c2)  # [K, H, W]
    probs = soft_aggregate(probs)[1:]            # objects compete for pixels
"""
from tubelet.models.seq_mask_rcnn.aggregate import (soft_aggregate, soft_aggregate_ce_loss,
                                                    soft_aggregate_log_probs,
                                                    soft_aggregate_logits, soft_iou_loss)
from tubelet.models.seq_mask_rcnn.boxes import mask_boxes
from tubelet.models.seq_mask_rcnn.mask_rcnn import FrameMaskRCNN, MaskRCNNConfig
from tubelet.models.seq_mask_rcnn.memory import PropagationMemory
from tubelet.models.seq_mask_rcnn.outputs import FrameFeatures, FrameOutputs, RCNNDetections
from tubelet.models.seq_mask_rcnn.seq_prop import (MEM_STRIDES, Refine, ResBlock, SeqPropConfig,
                                                   SeqPropHead, memory_read)

__all__ = ["FrameMaskRCNN", "MaskRCNNConfig", "FrameFeatures", "FrameOutputs", "RCNNDetections",
           "SeqPropHead", "SeqPropConfig", "MEM_STRIDES", "ResBlock", "Refine", "memory_read",
           "soft_aggregate", "soft_aggregate_logits", "soft_aggregate_log_probs",
           "soft_aggregate_ce_loss", "soft_iou_loss", "PropagationMemory", "mask_boxes"]
