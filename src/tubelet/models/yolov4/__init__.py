"""YOLOv4+1seg (Rossetti et al. 2021) model pieces: CSPDarknet53 + SPP + PAN-p2, k-means anchors,
δ-map box coding, per-level then cross-level NMS, adaptive feature pooling + mask subnet, the
four losses with automatic loss balancing, and the letterbox.

    from tubelet.models.yolov4 import YOLOv4Seg, YOLOv4SegConfig
    model = YOLOv4Seg(YOLOv4SegConfig.cpu(num_classes=4))
    losses = model(images, targets)   # train mode: {"loss_box", ..., "loss_mask", "raw_box", ...}
    detections = model.eval()(images)        # list of Detections, one per image
"""
from tubelet.models.yolov4.anchors import (default_anchors, kmeans_anchors, level_anchors,
                                           split_anchors, wh_iou)
from tubelet.models.yolov4.boxes import (Proposals, activate, decode, decode_level, encode, make_grid,
                                         per_level_nms, select_proposals)
from tubelet.models.yolov4.config import YOLOv4SegConfig
from tubelet.models.yolov4.cspdarknet import CSPDarknet53
from tubelet.models.yolov4.detector import HeadOutputs, LossTerms, YOLOv4Seg
from tubelet.models.yolov4.letterbox import (Letterbox, letterbox_boxes, letterbox_images,
                                             letterbox_masks, letterbox_params, unletterbox_boxes,
                                             unletterbox_masks)
from tubelet.models.yolov4.losses import (LOSS_NAMES, AutoLossBalance, box_loss, class_loss, conf_loss,
                                          mask_loss)
from tubelet.models.yolov4.mask_head import (MaskSubnet, adaptive_feature_pool, mask_centroids,
                                             paste_masks_in_boxes, roi_mask_targets)
from tubelet.models.yolov4.neck import SPP, PAN
from tubelet.models.yolov4.targets import (LevelTargets, assign_targets, ignore_mask,
                                           instance_centroids, match_proposals)

__all__ = ["default_anchors", "kmeans_anchors", "level_anchors", "split_anchors", "wh_iou", "Proposals",
           "activate", "decode", "decode_level", "encode", "make_grid", "per_level_nms",
           "select_proposals", "YOLOv4SegConfig", "CSPDarknet53", "HeadOutputs", "LossTerms",
           "YOLOv4Seg", "Letterbox", "letterbox_boxes", "letterbox_images", "letterbox_masks",
           "letterbox_params", "unletterbox_boxes", "unletterbox_masks", "LOSS_NAMES",
           "AutoLossBalance", "box_loss", "class_loss", "conf_loss", "mask_loss", "MaskSubnet",
           "adaptive_feature_pool", "mask_centroids", "paste_masks_in_boxes", "roi_mask_targets",
           "SPP", "PAN", "LevelTargets", "assign_targets", "ignore_mask", "instance_centroids",
           "match_proposals"]
