"""Set criterion of the contrastive online method's detector (DETR-style, deep supervision).

For every decoder layer (the last one and each of ``aux_outputs``) the queries are matched to the
objects with :class:`HungarianMatcher`, then (REFERENCE_NOTES §4 weights)::

    loss_class = 2 * sum focal(logits, one-hot of matched classes) / N_obj   (all Q x C entries)
    loss_bbox  = 5 * sum |b_q - b_g|_1 / N_obj                              (cxcywh, normalised)
    loss_giou  = 2 * sum (1 - GIoU(b_q, b_g)) / N_obj
    loss_mask  = 2 * sum_matched mean_pixels focal(mask logits, gt mask) / N_obj
    loss_dice  = 5 * sum_matched dice(mask probs, gt mask) / N_obj

N_obj = number of objects in the batch (>= 1). Auxiliary layer d's losses carry the suffix
``_d`` (``loss_class_0`` ... for layers 0 .. N_dec - 2); the last layer has no suffix. Losses come
back already weighted: the trainer sums them. Masks are scored at stride 4 against the ground truth
sampled at the mask pixels' centres (pixel (i, j) at (j s + s // 2, i s + s // 2), the dynamic
head's convention); dice is the shared CondInst form :func:`~tubelet.models.condinst.losses.dice_loss`.

Targets, one dict per image (the toolkit's format): ``"boxes"`` ``[G, 4]`` xyxy pixels of the
padded frame, ``"labels"`` ``[G]`` 0-based, ``"masks"`` ``[G, H, W]`` bool (with masks on).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tubelet.models.condinst.losses import dice_loss, sigmoid_focal_loss
from tubelet.models.deformable_detr.box_ops import (cxcywh_to_xyxy, generalized_box_iou,
                                                    xyxy_to_cxcywh)
from tubelet.models.deformable_detr.matcher import HungarianMatcher

# (outputs, layer, image_index [N], query_index [N]) -> mask logits [N, H_m, W_m]
MaskFn = Callable[[dict, dict, Tensor, Tensor], Tensor]


@dataclass
class CriterionConfig:
    """Weights of the matching costs and of the losses (paper / authors' defaults)."""
    cost_class: float = 2.0     # focal class cost
    cost_bbox: float = 5.0      # L1 box cost
    cost_giou: float = 2.0      # -GIoU cost
    cost_mask: float = 0.0      # pixel focal mask cost (0: box-only matching)
    cost_dice: float = 0.0      # dice mask cost
    loss_class: float = 2.0     # focal class loss
    loss_bbox: float = 5.0      # L1 box loss
    loss_giou: float = 2.0      # GIoU loss
    loss_mask: float = 2.0      # pixel focal mask loss
    loss_dice: float = 5.0      # dice mask loss
    focal_alpha: float = 0.25   # focal alpha (class and mask)
    focal_gamma: float = 2.0    # focal gamma
    aux_masks: bool = True      # mask losses on the auxiliary layers too (deep supervision)

    @classmethod
    def paper(cls, **overrides) -> "CriterionConfig":
        """The authors' weights (class 2, L1 5, GIoU 2, mask focal 2, dice 5; costs 2/5/2)."""
        return cls(**overrides)

    @classmethod
    def cpu(cls, **overrides) -> "CriterionConfig":
        """Same losses as the paper (the criterion is cheap next to the network: masks are only
        decoded for matched queries); auxiliary mask losses kept."""
        return cls(**overrides)


def sample_masks(masks: Tensor, stride: int, size: tuple[int, int]) -> Tensor:
    """``[G, H, W]`` bool -> ``[G, h, w]`` float, the value at each stride-s pixel centre
    ``(i s + s // 2, j s + s // 2)``; centres beyond the mask read 0."""
    h, w = size
    m = masks[:, stride // 2::stride, stride // 2::stride][:, :h, :w].float()
    return F.pad(m, (0, w - m.shape[2], 0, h - m.shape[1]))


class SetCriterion(nn.Module):
    """Hungarian-matched detection + mask losses with deep supervision.

    Args:
        num_classes: C.
        cfg: :class:`CriterionConfig`.
        mask_stride: stride of the predicted masks (4).
    """

    def __init__(self, num_classes: int, cfg: CriterionConfig | None = None, mask_stride: int = 4):
        super().__init__()
        self.cfg = cfg = cfg or CriterionConfig()
        self.num_classes, self.mask_stride = num_classes, mask_stride
        self.matcher = HungarianMatcher(cfg.cost_class, cfg.cost_bbox, cfg.cost_giou,
                                        cfg.cost_mask, cfg.cost_dice, cfg.focal_alpha,
                                        cfg.focal_gamma)

    @staticmethod
    def normalised_boxes(targets: list[dict], image_size: tuple[int, int]) -> list[Tensor]:
        """Per image ``[G, 4]`` xyxy pixels -> cxcywh divided by the padded (W, H)."""
        h, w = image_size
        out = []
        for t in targets:
            b = t["boxes"].reshape(-1, 4).float()
            out.append(xyxy_to_cxcywh(b) / b.new_tensor([w, h, w, h]))
        return out

    def match(self, outputs: dict, layer: dict, targets: list[dict], gt_boxes: list[Tensor],
              mask_fn: MaskFn | None = None) -> list[tuple[Tensor, Tensor]]:
        """Per image (query index ``[M]``, object index ``[M]``) for one layer's outputs."""
        indices = []
        for b, t in enumerate(targets):
            labels = t["labels"].to(layer["pred_logits"].device)
            mask_logits = tgt_masks = None
            if self.matcher.uses_masks and labels.numel():
                q = torch.arange(layer["pred_logits"].shape[1], device=labels.device)
                with torch.no_grad():
                    mask_logits = mask_fn(outputs, layer, torch.full_like(q, b), q)
                tgt_masks = sample_masks(t["masks"].to(labels.device), self.mask_stride,
                                         tuple(mask_logits.shape[-2:]))
            indices.append(self.matcher(layer["pred_logits"][b], layer["pred_boxes"][b], labels,
                                        gt_boxes[b].to(labels.device), mask_logits, tgt_masks))
        return indices

    def layer_losses(self, outputs: dict, layer: dict, targets: list[dict],
                     gt_boxes: list[Tensor], indices: list[tuple[Tensor, Tensor]],
                     num_objects: float, mask_fn: MaskFn | None, with_masks: bool) -> dict[str, Tensor]:
        """Weighted losses of one layer (unsuffixed names)."""
        cfg = self.cfg
        logits = layer["pred_logits"]  # [B, Q, C]
        img = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)])
        qry = torch.cat([q for q, _ in indices])
        labels = torch.cat([t["labels"].to(logits.device)[g] for t, (_, g) in zip(targets, indices)])
        onehot = torch.zeros_like(logits)
        onehot[img, qry, labels] = 1.0
        losses = {"loss_class": cfg.loss_class * sigmoid_focal_loss(
            logits, onehot, cfg.focal_alpha, cfg.focal_gamma) / num_objects}
        pred = layer["pred_boxes"][img, qry]  # [M, 4]
        gt = torch.cat([gb.to(pred.device)[g] for gb, (_, g) in zip(gt_boxes, indices)])
        losses["loss_bbox"] = cfg.loss_bbox * (pred - gt).abs().sum() / num_objects
        giou = torch.diag(generalized_box_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(gt)))
        losses["loss_giou"] = cfg.loss_giou * (1 - giou).sum() / num_objects
        if with_masks:
            if img.numel() == 0:
                zero = outputs["mask_feats"].sum() * 0 + layer["mask_params"].sum() * 0
                losses["loss_mask"], losses["loss_dice"] = zero, zero.clone()
            else:
                logits_m = mask_fn(outputs, layer, img, qry)  # [M, H_m, W_m]
                size = tuple(logits_m.shape[-2:])
                tgt = torch.cat([sample_masks(t["masks"].to(pred.device)[g], self.mask_stride, size)
                                 for t, (_, g) in zip(targets, indices)])
                focal = sigmoid_focal_loss(logits_m, tgt, cfg.focal_alpha, cfg.focal_gamma)
                losses["loss_mask"] = cfg.loss_mask * focal / (size[0] * size[1]) / num_objects
                losses["loss_dice"] = cfg.loss_dice * dice_loss(logits_m.sigmoid(), tgt).sum() \
                    / num_objects
        return losses

    def forward(self, outputs: dict, targets: list[dict], mask_fn: MaskFn | None = None
                ) -> tuple[dict[str, Tensor], list[tuple[Tensor, Tensor]]]:
        """Losses of every decoder layer and the last layer's matching.

        Args:
            outputs: :class:`~tubelet.models.deformable_detr.DeformableDETR` output dict.
            targets: B dicts (module docstring).
            mask_fn: e.g. ``model.mask_logits``; None skips the mask losses.

        Returns:
            (weighted losses by name, per image (query index ``[M]``, object index ``[M]``) of the
            last layer).
        """
        gt_boxes = self.normalised_boxes(targets, outputs["image_size"])
        num_objects = float(max(sum(int(t["labels"].numel()) for t in targets), 1))
        losses: dict[str, Tensor] = {}
        last = None
        layers = list(outputs.get("aux_outputs", [])) + [outputs]
        for d, layer in enumerate(layers):
            is_last = d == len(layers) - 1
            indices = self.match(outputs, layer, targets, gt_boxes, mask_fn)
            with_masks = mask_fn is not None and (is_last or self.cfg.aux_masks)
            part = self.layer_losses(outputs, layer, targets, gt_boxes, indices, num_objects,
                                     mask_fn, with_masks)
            suffix = "" if is_last else f"_{d}"
            losses.update({k + suffix: v for k, v in part.items()})
            last = indices
        return losses, last
