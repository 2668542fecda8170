"""``contrastive-online``: the YouTube-VIS 2022 winner's online method (IDOL-style), Sec. 3.

Network (:mod:`tubelet.models.deformable_detr`): Deformable DETR with iterative box refinement,
a CondInst-style dynamic mask head per query and a contrastive head (MLP, 3 layers) on the last
decoder layer's embeddings.

Training (``losses = method(batch)``), clips of T = 2 frames within ±10 frames of one video
(``data.clip.num_frames 2, gap_range [1, 10]``); which of the two is the key is a coin flip per
clip (``random_key``), so the reference lies before or after it as in the paper:
- the set criterion (Hungarian matching; class focal 2, L1 5, GIoU 2, mask focal 2, dice 5;
  deep supervision on every decoder layer) on *both* frames as 2B independent images,
- the contrastive loss (Eq. 2, weight 2) + auxiliary cosine loss (weight 3) between them: for each
  object seen on both frames, anchor = its lowest-cost key-frame query, positives / negatives =
  the dynamic-k sets on the reference frame (:func:`contrastive_items`; REFERENCE_NOTES §4).
  Not deep-supervised (last layer only), as in the notes.

Inference (``predict_video``): per frame, :func:`~.inference.frame_instances` keeps queries with
class probability > 0.1 and decodes their masks; the tracker chosen by ``cfg.tracker`` associates
them: ``memory`` (the paper: box NMS 0.9, mask NMS 0.5, bi-softmax memory bank — all inside
the tracker), ``greedy`` (IoU only) or ``none`` (each detection its own track) for the paper's
association ablation, both fed the memory tracker's filtered detections. Memory is flat in the
video length: the network holds nothing between frames.
"""
from __future__ import annotations

import torch
from torch import Tensor

from tubelet.methods.contrastive_online.config import ContrastiveOnlineConfig
from tubelet.methods.contrastive_online.inference import ablation_prefilter, frame_instances
from tubelet.methods.registry import register_method
from tubelet.methods.track_by_detect import TrackByDetect
from tubelet.models.deformable_detr import (DeformableDETR, SetCriterion, contrastive_items)
from tubelet.models.embed_head import auxiliary_cosine_loss, contrastive_loss
from tubelet.structures import FrameInstances


class ContrastiveOnline(TrackByDetect):
    def __init__(self, cfg: ContrastiveOnlineConfig):
        super().__init__(cfg)  # checks cfg.tracker against provided_fields()
        self.detector = DeformableDETR.from_config(cfg.model)
        self.criterion = SetCriterion(cfg.model.num_classes, cfg.criterion)
        self.set_categories([(i + 1, f"class{i + 1}") for i in range(cfg.model.num_classes)])

    def provided_fields(self) -> set[str]:
        return {"class_probs", "embeddings", "boxes"}

    # ------------------------------------------------------------------------------ training
    def forward(self, batch: dict) -> dict[str, Tensor]:
        """``batch["images"]`` uint8 ``[B, T, 3, H, W]`` (T >= 2 for the contrastive loss; frames
        0 and 1 of each clip are the key / reference pair, in random order when
        ``cfg.random_key``), ``batch["targets"]`` B lists of T dicts
        (:mod:`tubelet.data.clips`) -> weighted losses + ``num_anchors`` (logged only)."""
        images = batch["images"].to(self.pixel_mean.device)
        b, t = images.shape[:2]
        flat = self.normalize(images.flatten(0, 1))  # [B*T, 3, H, W]
        targets = [tg for clip in batch["targets"] for tg in clip]  # B*T frame targets
        out = self.detector(flat)
        losses, _ = self.criterion(out, targets, mask_fn=self.detector.mask_logits)
        anchors, pos, neg = [], [], []
        if t >= 2:
            gt_boxes = SetCriterion.normalised_boxes(targets, out["image_size"])  # cxcywh
            prob = out["pred_logits"].detach().sigmoid()  # [B*T, Q, C]
            # ClipDataset returns frames in temporal order; the paper draws the reference within
            # +-10 frames of the key, before or after it: a coin per clip picks which is the key
            swap = torch.randint(2, (b,)).tolist() if self.cfg.random_key else [0] * b
            for i in range(b):
                k, r = i * t + swap[i], i * t + 1 - swap[i]  # key / reference of clip i
                a, p, n = self._pair(out, prob, k, r, targets, gt_boxes)
                anchors.append(a)
                pos += p
                neg += n
        emb = out["contrast_embeds"]
        if pos:
            a = torch.cat(anchors)  # [A, D]
            losses["loss_contrast"] = self.cfg.contrast_weight * contrastive_loss(a, pos, neg)
            losses["loss_contrast_aux"] = self.cfg.aux_weight * auxiliary_cosine_loss(
                a, pos, neg, self.cfg.aux_max_neg_per_pos)
        else:  # no object on both frames: zero, still connected to the head (DDP-safe)
            losses["loss_contrast"] = emb.sum() * 0
            losses["loss_contrast_aux"] = emb.sum() * 0
        losses["num_anchors"] = torch.tensor(float(len(pos)))
        return losses

    def _pair(self, out: dict, prob: Tensor, k: int, r: int, targets: list[dict],
              gt_boxes: list[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Anchors / positives / negatives of key image ``k`` and reference image ``r``: the key
        frame's objects, aligned by identity with the reference frame's."""
        tk, tr = targets[k], targets[r]
        ids_k, ids_r = tk["ids"].tolist(), tr["ids"].tolist()
        where = {obj: j for j, obj in enumerate(ids_r)}
        ref_row = torch.tensor([where.get(obj, -1) for obj in ids_k], dtype=torch.long)  # [G]
        valid = ref_row >= 0
        ref_boxes = gt_boxes[k].new_zeros(len(ids_k), 4)  # [G, 4], zero where absent
        ref_boxes[valid] = gt_boxes[r][ref_row[valid]].to(ref_boxes)
        dev = prob.device
        return contrastive_items(
            prob[k], out["pred_boxes"][k], out["contrast_embeds"][k], prob[r],
            out["pred_boxes"][r], out["contrast_embeds"][r], tk["labels"].to(dev),
            gt_boxes[k].to(dev), ref_boxes.to(dev), valid.to(dev), self.cfg.selection)

    # ------------------------------------------------------------------------------ inference
    def detect(self, images: Tensor, size: tuple[int, int]) -> FrameInstances:
        out = self.detector.infer(images)  # the last decoder layer only
        h, w = images.shape[-2:]

        def mask_fn(q: Tensor) -> Tensor:  # [K] -> [K, h/4, w/4] logits
            return self.detector.mask_logits(out, out, torch.zeros_like(q), q)

        inst = frame_instances(out["pred_logits"][0].sigmoid(), out["pred_boxes"][0],
                               out["contrast_embeds"][0], mask_fn, (h, w), tuple(size),
                               self.category_ids.tolist(), self.cfg.score_thr, self.cfg.mask_thr)
        if self.cfg.tracker != "memory":  # the memory tracker filters itself (no second copy)
            inst = ablation_prefilter(inst, self.cfg.memory)
        return inst


@register_method("contrastive-online", ContrastiveOnlineConfig)
def build_contrastive_online(cfg: ContrastiveOnlineConfig) -> ContrastiveOnline:
    return ContrastiveOnline(cfg)
