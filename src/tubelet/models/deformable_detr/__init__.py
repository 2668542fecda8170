"""Deformable DETR with dynamic mask and contrastive heads: the contrastive online method's model.

    from tubelet.models.deformable_detr import (DeformableDETR, DeformableDETRConfig, SetCriterion,
                                                CriterionConfig)
    model = DeformableDETR.from_config(DeformableDETRConfig.cpu(num_classes=4))
    criterion = SetCriterion(4, CriterionConfig.cpu())
    outputs = model(images)                                   # dict, see model.py
    losses, indices = criterion(outputs, targets, mask_fn=model.mask_logits)

Pieces: :mod:`.ms_deform_attn` (grid_sample deformable attention), :mod:`.transformer` (encoder,
decoder, box refinement), :mod:`.mask_head` (controller + shared dynamic head), :mod:`.matcher`,
:mod:`.criterion` (deep-supervised set loss), :mod:`.contrastive` (dynamic-k positives / negatives).
"""
from tubelet.models.deformable_detr.box_ops import (box_iou, cxcywh_to_xyxy, generalized_box_iou,
                                                    inverse_sigmoid, xyxy_to_cxcywh)
from tubelet.models.deformable_detr.contrastive import (SelectionConfig, center_prior,
                                                        contrastive_items, dynamic_k_matching,
                                                        select_key_queries, select_pos_neg,
                                                        selection_cost)
from tubelet.models.deformable_detr.criterion import CriterionConfig, SetCriterion, sample_masks
from tubelet.models.deformable_detr.mask_head import QueryMaskHead
from tubelet.models.deformable_detr.matcher import HungarianMatcher, focal_class_cost
from tubelet.models.deformable_detr.model import DeformableDETR, DeformableDETRConfig
from tubelet.models.deformable_detr.ms_deform_attn import MSDeformAttn, ms_deform_attn_core
from tubelet.models.deformable_detr.transformer import (DeformableTransformer,
                                                        sine_position_encoding)

__all__ = ["DeformableDETR", "DeformableDETRConfig", "DeformableTransformer", "MSDeformAttn",
           "ms_deform_attn_core", "sine_position_encoding", "QueryMaskHead", "HungarianMatcher",
           "focal_class_cost", "SetCriterion", "CriterionConfig", "sample_masks",
           "SelectionConfig", "center_prior", "selection_cost", "dynamic_k_matching",
           "select_pos_neg", "select_key_queries", "contrastive_items", "box_iou",
           "generalized_box_iou", "cxcywh_to_xyxy", "xyxy_to_cxcywh", "inverse_sigmoid"]
