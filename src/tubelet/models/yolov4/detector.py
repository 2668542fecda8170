"""YOLOv4+1seg (Rossetti, Zharkynbek, Pirri 2021): YOLOv4 extended to p2, plus a mask subnet.

    images [B, 3, S, S] (letterboxed) -> CSPDarknet53 c2..c5 -> SPP + PAN-p2 n2..n5 (strides 4..32)
      -> per level: head [B, A, H_l, W_l, 4 + 1 + C] (δ, confidence, class logits; the paper's
         nB x nA x nw x nh x nC) and embedding [B, E, H_l, W_l]
      -> decode δ, NMS per level then across levels (<= 50 proposals)
      -> adaptive feature pooling on the 4 embeddings -> mask subnet -> 2P x 2P mask per proposal.

Training (``model.train(); model(images, targets)``) returns ``{"loss_box", "loss_conf",
"loss_cls", "loss_mask"}``, each the sum over levels of that loss's terms of Eq. 1 (balanced), so
their sum is ``L_tot``, plus logging-only ``raw_*`` (unweighted, detached);
:meth:`YOLOv4Seg.compute_losses` gives the per-level values.
Inference (``model.eval(); model(images)`` or :meth:`predict`) returns one
:class:`~tubelet.models.condinst.postprocess.Detections` per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from tubelet.models.backbones import Backbone
from tubelet.models.condinst.postprocess import Detections
from tubelet.models.frozen import FrozenByShape
from tubelet.models.weights import is_random_init
from tubelet.models.yolov4.anchors import default_anchors
from tubelet.models.yolov4.boxes import Proposals, activate, decode, make_grid, select_proposals
from tubelet.models.yolov4.config import YOLOv4SegConfig
from tubelet.models.yolov4.cspdarknet import CSPDarknet53
from tubelet.models.yolov4.layers import conv_bn_act
from tubelet.models.yolov4.letterbox import Letterbox, unletterbox_boxes
from tubelet.models.yolov4.losses import (LOSS_NAMES, AutoLossBalance, box_loss, class_loss,
                                          conf_loss, mask_loss)
from tubelet.models.yolov4.mask_head import (MaskSubnet, adaptive_feature_pool, mask_centroids,
                                             paste_masks_in_boxes, roi_mask_targets)
from tubelet.models.yolov4.neck import PAN
from tubelet.models.yolov4.targets import (assign_targets, best_anchor_level, ignore_mask,
                                           instance_centroids, match_proposals)


@dataclass
class HeadOutputs:
    """Dense outputs of a batch. raw: per level ``[B, A, H_l, W_l, 5 + C]`` (t_x, t_y, t_w, t_h,
    confidence logit, class logits); embeds: per level ``[B, E, H_l, W_l]``."""
    raw: list[Tensor]
    embeds: list[Tensor]


@dataclass
class LossTerms:
    """Per-level losses, rows = L levels (finest first), columns = the 4 :data:`LOSS_NAMES`.
    raw: ``[L, 4]`` unweighted L_j^i; valid: ``[L, 4]`` bool; terms: ``[L, 4]`` weighted terms."""
    raw: Tensor
    valid: Tensor
    terms: Tensor


class YOLOv4Seg(nn.Module):
    """The YOLOv4+1seg instance segmenter; keyword arguments are :class:`YOLOv4SegConfig`'s fields."""

    def __init__(self, cfg: YOLOv4SegConfig | None = None, **overrides):
        super().__init__()
        cfg = cfg or YOLOv4SegConfig()
        if overrides:
            cfg = YOLOv4SegConfig(**{**vars(cfg), **overrides})
        if cfg.class_at not in ("mask_centroid", "box_center"):
            raise ValueError(f"class_at must be mask_centroid or box_center, got {cfg.class_at!r}")
        self.cfg = cfg
        if cfg.backbone == "cspdarknet53":
            self.backbone = CSPDarknet53(cfg.width, cfg.depth, cfg.backbone_act)
        else:  # a shared torchvision trunk, c2 included (the p2 level needs it)
            has_weights = not is_random_init(cfg.pretrained)
            self.backbone = Backbone(cfg.backbone, pretrained=cfg.pretrained,
                                     norm="frozen_bn" if has_weights else "bn",
                                     freeze_at=2 if has_weights else 0, return_c2=True)
        self.neck = PAN(self.backbone.out_channels, tuple(cfg.neck_channels),
                        cfg.neck_block_convs, cfg.neck_act, tuple(cfg.spp_kernels))
        self.strides = tuple(self.neck.strides.values())  # (4, 8, 16, 32); (8, 16, 32) with p2 off
        levels = len(self.strides)
        a, c, e = cfg.anchors_per_level, cfg.num_classes, cfg.embed_channels
        self.heads = nn.ModuleList()
        for n in cfg.neck_channels:  # "kernels of size one and three" (paper §3.2)
            pred = nn.Conv2d(2 * n, a * (5 + c), 1)
            nn.init.normal_(pred.weight, std=0.01)
            bias = torch.zeros(a, 5 + c)
            bias[:, 4] = -math.log((1 - cfg.prior_prob) / cfg.prior_prob)
            with torch.no_grad():
                pred.bias.copy_(bias.flatten())
            self.heads.append(nn.Sequential(conv_bn_act(n, 2 * n, 3, act=cfg.neck_act), pred))
        self.embeds = nn.ModuleList([conv_bn_act(n, e, 3, act=cfg.neck_act)
                                     for n in cfg.neck_channels])
        self.mask_head = MaskSubnet(e, cfg.mask_convs)
        self.balance = AutoLossBalance(levels, len(LOSS_NAMES))
        anchors = (torch.tensor(cfg.anchors, dtype=torch.float32) if cfg.anchors is not None
                   else default_anchors(self.strides, a))
        if tuple(anchors.shape) != (levels, a, 2):
            raise ValueError(f"anchors must be [{levels}, {a}, 2], got {tuple(anchors.shape)}")
        self.register_buffer("anchors", anchors)  # [L, A, 2], saved with the weights
        self.num_classes = c
        self.frozen_dense: FrozenByShape | None = None  # set by fuse_for_inference

    @classmethod
    def from_config(cls, cfg: YOLOv4SegConfig, **overrides) -> "YOLOv4Seg":
        return cls(cfg, **overrides)

    def set_anchors(self, anchors: Tensor) -> None:
        """Replace the priors by ``[L, A, 2]`` anchors (e.g. ``level_anchors`` on the training
        set's letterboxed box sizes)."""
        self.anchors.copy_(anchors.reshape(self.anchors.shape))

    # ------------------------------------------------------------------------------------------
    def forward_heads(self, images: Tensor) -> HeadOutputs:
        """images ``[B, 3, H, W]`` -> :class:`HeadOutputs`."""
        if self.frozen_dense is not None and not self.training:
            heads, embeds = self.frozen_dense(images)
        else:
            heads, embeds = self._dense(images)
        a = self.cfg.anchors_per_level
        raw = []
        for p in heads:  # [B, A (5 + C), H, W]
            b, _, h, w = p.shape
            raw.append(p.reshape(b, a, -1, h, w).permute(0, 1, 3, 4, 2))  # [B, A, H, W, 5 + C]
        return HeadOutputs(raw, list(embeds))

    def fuse_for_inference(self) -> None:
        """At inference (``predict``), run the dense part (backbone, neck, heads, embedding
        convs) as a TorchScript graph frozen per input shape (:class:`FrozenByShape`; oneDNN
        fuses e.g. MobileNetV2's conv + ReLU6). One-way, like BatchNorm folding."""
        self.frozen_dense = FrozenByShape(self, self._dense)

    def _dense(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Backbone, neck, heads and embeds on images ``[B, 3, H, W]`` -> per level the head maps
        ``[B, A (5 + C), H_l, W_l]`` and the embeddings ``[B, E, H_l, W_l]``."""
        feats = self.neck(self.backbone(images))  # [n2, n3, n4, n5]
        return ([head(f) for f, head in zip(feats, self.heads)],
                [emb(f) for emb, f in zip(self.embeds, feats)])

    def _proposals(self, outputs: HeadOutputs, b: int, conf_thr: float,
                   max_proposals: int) -> Proposals:
        """Image b's proposals: anchors with confidence >= ``conf_thr`` (the ``pre_nms_topk``
        best per level) are decoded, then NMS per level and across levels. ``index`` is the flat
        (anchor, y, x) index on the proposal's level."""
        cfg = self.cfg
        boxes, scores, flat, labels = [], [], [], []
        for r, anc, s in zip(outputs.raw, self.anchors, self.strides):
            r = r[b].detach()  # [A, H, W, 5 + C]
            h, w = r.shape[1:3]
            conf = torch.sigmoid(r[..., 4]).reshape(-1)  # [A H W]
            idx = torch.nonzero(conf >= conf_thr).flatten()
            if idx.numel() > cfg.pre_nms_topk:
                idx = idx[conf[idx].topk(cfg.pre_nms_topk).indices]
            a, cy, cx = idx // (h * w), (idx // w) % h, idx % w
            cand = r[a, cy, cx]  # [K, 5 + C]; only candidates are decoded
            grid = torch.stack([cx, cy], 1).to(r.dtype)
            boxes.append(decode(activate(cand[:, :4]), anc[a], grid, s))
            scores.append(conf[idx])
            flat.append(idx)
            labels.append(cand[:, 5:].argmax(1))
        props = select_proposals(boxes, scores, conf_thr, cfg.nms_thr, max_proposals,
                                 cfg.pre_nms_topk, labels if cfg.class_aware_nms else None)
        for lvl, idx in enumerate(flat):  # candidate index -> flat index on the level
            on = props.levels == lvl
            props.index[on] = idx[props.index[on]]
        return props

    def _pool_masks(self, outputs: HeadOutputs, boxes: Tensor,
                    batch_index: Tensor) -> tuple[Tensor, Tensor]:
        """Mask logits ``[K, 2P, 2P]`` and pooled features ``[K, E, P, P]`` of K boxes."""
        pooled = adaptive_feature_pool(outputs.embeds, self.strides, boxes, batch_index,
                                       self.cfg.pool_size, self.cfg.sampling_ratio, self.cfg.fusion)
        return self.mask_head(pooled)[:, 0], pooled

    # ------------------------------------------------------------------------------------------
    def compute_losses(self, outputs: HeadOutputs, targets: list[dict]) -> LossTerms:
        """Per-level losses; ``targets`` as in :meth:`forward`."""
        cfg = self.cfg
        device = outputs.raw[0].device
        gt_boxes, gt_labels, gt_masks = [], [], []
        for t in targets:
            bx = t["boxes"].to(device).reshape(-1, 4).float()
            keep = (bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1])  # log(0) has no δ target
            gt_boxes.append(bx[keep])
            gt_labels.append(t["labels"].to(device).reshape(-1).long()[keep])
            gt_masks.append(t["masks"].to(device)[keep] if "masks" in t else None)
        centroids = [instance_centroids(m if cfg.class_at == "mask_centroid" else None, bx)
                     for m, bx in zip(gt_masks, gt_boxes)]
        sizes = [tuple(r.shape[2:4]) for r in outputs.raw]
        assigned = assign_targets(self.anchors, self.strides, sizes, gt_boxes, gt_labels, centroids,
                                  cfg.anchor_iou_thr)
        num_pos = float(sum(int(t.positive.sum()) for t in assigned))
        levels = len(self.strides)
        rows, valid = [], torch.zeros(levels, len(LOSS_NAMES), dtype=torch.bool, device=device)
        for lvl, (r, t, anc, s) in enumerate(zip(outputs.raw, assigned, self.anchors, self.strides)):
            deltas = activate(r[..., :4])  # [B, A, H, W, 4]
            grid = make_grid(*r.shape[2:4], device=device)
            pred_boxes = decode(deltas.detach(), anc[:, None, None, :], grid, s)
            ignore = ignore_mask(pred_boxes, gt_boxes, cfg.ignore_thr) & ~t.positive
            lb, vb = box_loss(deltas[t.positive], t.deltas[t.positive], cfg.smooth_l1_beta)
            lc, vc = conf_loss(r[..., 4], t.positive, ignore, num_pos)
            lk, vk = class_loss(r[..., 5:], t.classes)
            rows.append([lb, lc, lk])
            valid[lvl, :3] = torch.tensor([vb, vc, vk], device=device)
        mask_per_level, mask_valid = self._mask_losses(outputs, gt_boxes, gt_masks)
        raw_l = torch.stack([torch.stack(row + [m]) for row, m in zip(rows, mask_per_level)])
        valid[:, 3] = mask_valid
        if cfg.balance_losses:
            terms = self.balance(raw_l, valid)
        else:
            weights = raw_l.new_tensor(cfg.fixed_loss_weights)[None]  # [1, 4]
            terms = torch.where(valid, raw_l * weights, torch.zeros_like(raw_l))
        return LossTerms(raw_l, valid, terms)

    def _mask_losses(self, outputs: HeadOutputs, gt_boxes: list[Tensor],
                     gt_masks: list[Tensor | None]) -> tuple[list[Tensor], Tensor]:
        """Mask BCE per level of the proposal's origin; proposals = predictions selected as at
        inference (``train_conf_thr``, ``train_max_proposals``) plus the ground-truth boxes
        (on their best anchor's level), each matched to a ground truth at IoU >= ``mask_match_thr``."""
        cfg = self.cfg
        device = outputs.raw[0].device
        boxes, levels, img, targets = [], [], [], []
        size = 2 * cfg.pool_size
        for b, (gb, gm) in enumerate(zip(gt_boxes, gt_masks)):
            if gm is None or gb.shape[0] == 0:
                continue
            props = self._proposals(outputs, b, cfg.train_conf_thr, cfg.train_max_proposals)
            pb = torch.cat([props.boxes, gb])  # [K, 4]
            pl = torch.cat([props.levels, best_anchor_level(gb, self.anchors)])
            match = match_proposals(pb, gb, cfg.mask_match_thr)
            on = match >= 0
            pb, pl, match = pb[on], pl[on], match[on]
            boxes.append(pb)
            levels.append(pl)
            img.append(torch.full_like(pl, b))
            targets.append(roi_mask_targets(gm[match], pb, size))
        if not boxes:
            # keep every parameter in the graph (distributed training expects a gradient for each)
            zero = (sum(e.sum() for e in outputs.embeds)
                    + sum(p.sum() for p in self.mask_head.parameters())) * 0
            levels = len(self.strides)
            return [zero] * levels, torch.zeros(levels, dtype=torch.bool, device=device)
        logits, _ = self._pool_masks(outputs, torch.cat(boxes), torch.cat(img))
        targets_t, levels_t = torch.cat(targets), torch.cat(levels)
        per_level, valid = [], []
        for lvl in range(len(self.strides)):
            on = levels_t == lvl
            loss, ok = mask_loss(logits[on], targets_t[on])
            per_level.append(loss)
            valid.append(ok)
        return per_level, torch.tensor(valid, device=device)

    def forward(self, images: Tensor, targets: list[dict] | None = None):
        """Training: ``targets`` per image ``{"boxes": [M, 4] (x1, y1, x2, y2) pixels of the input,
        "labels": [M] 0-based, "masks": [M, H, W] bool in the input frame}`` -> the four balanced
        loss sums ``loss_*`` (their sum is Eq. 1's L_tot) and, for logging only, the unweighted
        per-loss sums over levels ``raw_*`` (detached). Evaluation: :meth:`predict`."""
        if self.training:
            if targets is None:
                raise ValueError("training forward needs targets")
            lt = self.compute_losses(self.forward_heads(images), targets)
            terms = lt.terms.sum(0)  # [4]
            raw = torch.where(lt.valid, lt.raw, torch.zeros_like(lt.raw)).detach().sum(0)  # [4]
            out = {f"loss_{n}": terms[j] for j, n in enumerate(LOSS_NAMES)}
            out.update({f"raw_{n}": raw[j] for j, n in enumerate(LOSS_NAMES)})  # logging only
            return out
        return self.predict(images)

    @torch.no_grad()
    def predict(self, images: Tensor, letterboxes: Sequence[Letterbox] | None = None,
                mask_probs: bool = False) -> list[Detections]:
        """Detections per image.

        Args:
            images: ``[B, 3, S_h, S_w]`` letterboxed, normalised network inputs.
            letterboxes: the :class:`Letterbox` of each image; boxes and masks are then mapped back
                to the original frame (default: stay in the input frame).
            mask_probs: float mask probabilities instead of bool masks.

        Returns:
            B ``Detections``: boxes ``[N, 4]``, scores ``[N]`` (confidence), labels ``[N]``,
            class_probs ``[N, C]`` (softmax), masks ``[N, H, W]``, features ``[N, E]`` (mean pooled
            embedding), centerness ``[N]`` (= the confidence; YOLO has no centerness), locations
            ``[N, 2]`` box centres in the input frame, levels ``[N]``; N <= ``max_proposals``.
        """
        cfg = self.cfg
        if self.training:  # BatchNorm must use its running statistics
            self.eval()
            try:
                outputs = self.forward_heads(images)
            finally:
                self.train(True)
        else:  # no mode switch: walking every module costs ~5 ms on the CPU config
            outputs = self.forward_heads(images)
        results = []
        in_h, in_w = images.shape[-2:]
        for b in range(images.shape[0]):
            props = self._proposals(outputs, b, cfg.conf_thr, cfg.max_proposals)
            logits, pooled = self._pool_masks(outputs, props.boxes,
                                              torch.full_like(props.levels, b))
            probs = torch.sigmoid(logits)  # [N, 2P, 2P]
            class_probs = self._read_classes(outputs, b, props, probs)
            if letterboxes is not None:
                out_size = letterboxes[b].orig_size
                paste_boxes = unletterbox_boxes(props.boxes, letterboxes[b], clip=False)
                boxes = unletterbox_boxes(props.boxes, letterboxes[b])
            else:
                out_size = (in_h, in_w)
                paste_boxes = props.boxes
                boxes = props.boxes.clone()
                boxes[:, 0::2] = boxes[:, 0::2].clamp(0, in_w)
                boxes[:, 1::2] = boxes[:, 1::2].clamp(0, in_h)
            masks = paste_masks_in_boxes(probs, paste_boxes, out_size,
                                         None if mask_probs else cfg.mask_thr)
            results.append(Detections(
                boxes=boxes, scores=props.scores, labels=class_probs.argmax(1),
                class_probs=class_probs, masks=masks, features=pooled.mean((2, 3)),
                centerness=props.scores, locations=(props.boxes[:, :2] + props.boxes[:, 2:]) / 2,
                levels=props.levels))
        return results

    def _read_classes(self, outputs: HeadOutputs, b: int, props: Proposals, probs: Tensor) -> Tensor:
        """Softmax class probabilities ``[N, C]`` of each proposal, read on its level at its anchor,
        in the cell of its mask's centroid (``class_at="mask_centroid"``, where classes were
        trained) or of its box centre (= the cell that predicted it)."""
        out = probs.new_zeros(len(props), self.num_classes)
        if self.cfg.class_at == "mask_centroid":
            points = mask_centroids(probs, props.boxes)  # [N, 2]
        else:
            points = (props.boxes[:, :2] + props.boxes[:, 2:]) / 2
        for lvl, (r, s) in enumerate(zip(outputs.raw, self.strides)):
            on = props.levels == lvl
            if not on.any():
                continue
            a_n, h, w = r.shape[1:4]
            anchor = props.index[on] // (h * w)
            cell = torch.floor(points[on] / s).long()
            cx, cy = cell[:, 0].clamp(0, w - 1), cell[:, 1].clamp(0, h - 1)
            out[on] = torch.softmax(r[b, anchor, cy, cx, 5:].float(), dim=-1)
        return out
