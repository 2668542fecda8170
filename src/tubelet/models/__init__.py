"""Shared neural network modules: backbones, FPN, CondInst, contrastive embedding head.

    from tubelet.models import CondInst
    model = CondInst(num_classes=40, backbone="mobilenet_v2", pretrained="imagenet",
                     fpn_channels=128)
    losses = model(images, targets)          # train mode: dict of scalar losses
    detections = model.predict(images)       # list of Detections, one per image
"""
from tubelet.models.backbones import Backbone, build_backbone, freeze_batchnorm
from tubelet.models.condinst import CondInst, CondInstConfig, Detections
from tubelet.models.embed_head import EmbedHead, auxiliary_cosine_loss, contrastive_loss
from tubelet.models.fpn import FPN
from tubelet.models.weights import resolve_weights

__all__ = ["Backbone", "build_backbone", "freeze_batchnorm", "FPN", "CondInst", "CondInstConfig",
           "Detections", "EmbedHead", "contrastive_loss", "auxiliary_cosine_loss",
           "resolve_weights"]
