"""CondInst per frame + a tracker from :mod:`tubelet.trackers` (never a private copy).

Training (``losses = method(batch)``): the T frames of each clip are independent CondInst images;
with ``embed=True`` the contrastive loss of the YouTube-VIS 2022 winner (IDOL-style, Eq. 2) is
added between frame 0 (key) and frame 1 (reference) of each clip, on a dense detector:
- anchor: the key-frame positive location of an object with the highest centerness target
  (IDOL takes the lowest-cost query; centerness is the dense detector's analogue),
- positives: the FCOS positive locations of the same object on the reference frame (the FCOS
  assignment plays the role of IDOL's dynamic-k positive set),
- negatives: positive locations of every other object on the reference frame, plus
  ``embed_bg_negatives`` random background locations (IDOL: every query outside the positive set).

Inference (``predict_video``): frames are resized, segmented one at a time, handed to the tracker
as :class:`FrameInstances`, and each frame's tracked masks are emitted at once; memory holds only
the tracker state (the memory-bank tracker keeps L embeddings per live track).
"""
from __future__ import annotations

import torch

from tubelet.methods.condinst_track.config import CondInstTrackConfig
from tubelet.methods.registry import register_method
from tubelet.methods.track_by_detect import TrackByDetect
from tubelet.models.condinst.model import CondInst
from tubelet.models.embed_head import EmbedHead, auxiliary_cosine_loss, contrastive_loss
from tubelet.ops.seq_nms import mask_nms
from tubelet.structures import FrameInstances


class CondInstTrack(TrackByDetect):
    def __init__(self, cfg: CondInstTrackConfig):
        super().__init__(cfg)  # checks cfg.tracker against provided_fields()
        self.segmenter = CondInst.from_config(cfg.model)
        self.embed_head = (EmbedHead(cfg.model.fpn_channels, cfg.embed_dim, cfg.embed_dim,
                                     cfg.embed_layers) if cfg.embed else None)
        self.set_categories([(i + 1, f"class{i + 1}") for i in range(cfg.model.num_classes)])

    def provided_fields(self) -> set[str]:
        return {"class_probs", "boxes"} | ({"embeddings"} if self.cfg.embed else set())

    # ------------------------------------------------------------------------------ training
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        images = batch["images"].to(self.pixel_mean.device)  # [B, T, 3, H, W] uint8
        b, t = images.shape[:2]
        flat = self.normalize(images.flatten(0, 1))  # [B*T, 3, H, W]
        targets = [tg for clip in batch["targets"] for tg in clip]  # B*T frame targets
        seg = self.segmenter
        outputs = seg.forward_heads(flat)
        assigned = seg.assign(outputs, targets)
        losses = seg.compute_losses(outputs, assigned, targets)
        if self.embed_head is not None and t >= 2:
            emb = self.embed_head(outputs.features)  # [B*T, L, D]
            anchors, pos, neg = [], [], []
            for i in range(b):
                k, r = i * t, i * t + 1  # key frame 0, reference frame 1 of clip i
                self._pairs(emb[k], emb[r], assigned[k], assigned[r], targets[k], targets[r],
                            anchors, pos, neg)
            if anchors:
                a = torch.stack(anchors)
                losses["loss_embed"] = self.cfg.embed_weight * contrastive_loss(a, pos, neg)
                losses["loss_embed_aux"] = self.cfg.embed_aux_weight * \
                    auxiliary_cosine_loss(a, pos, neg)
            else:
                losses["loss_embed"] = emb.sum() * 0
                losses["loss_embed_aux"] = emb.sum() * 0
        return losses

    def _pairs(self, ek, er, ak, ar, tk, tr, anchors, pos, neg) -> None:
        """Append (anchor, positives, negatives) for objects seen in key and reference frames."""
        pos_k = torch.nonzero(ak.labels >= 0).flatten()
        pos_r = torch.nonzero(ar.labels >= 0).flatten()
        if pos_k.numel() == 0 or pos_r.numel() == 0:
            return
        ids_k = tk["ids"].to(pos_k.device)[ak.gt_index[pos_k]]  # identity of each key positive
        ids_r = tr["ids"].to(pos_r.device)[ar.gt_index[pos_r]]
        bg = torch.nonzero(ar.labels < 0).flatten()
        if bg.numel() > self.cfg.embed_bg_negatives:
            bg = bg[torch.randperm(bg.numel(), device=bg.device)[: self.cfg.embed_bg_negatives]]
        for obj in torch.unique(ids_k):
            same = ids_r == obj
            if not bool(same.any()):
                continue
            cand = pos_k[ids_k == obj]
            best = cand[torch.argmax(ak.centerness[cand])]
            anchors.append(ek[best])
            pos.append(er[pos_r[same]])
            neg.append(torch.cat([er[pos_r[~same]], er[bg]]))

    # ------------------------------------------------------------------------------ inference
    def detect(self, images: torch.Tensor, size: tuple[int, int]) -> FrameInstances:
        keep = self.tracker_gate()  # a score gate commutes with the mask NMS below
        det = self.segmenter.predict(images, output_sizes=[size], keep=keep)[0]
        emb = self.embed_head(det.features) if self.embed_head is not None else None
        inst = det.to_frame_instances(self.category_ids.tolist(), emb)
        if self.cfg.pre_track_nms > 0 and len(inst) > 1:
            inst = inst[mask_nms(inst.scores, inst.masks, iou_threshold=self.cfg.pre_track_nms)]
        return inst


@register_method("condinst-track", CondInstTrackConfig)
def build_condinst_track(cfg: CondInstTrackConfig) -> CondInstTrack:
    return CondInstTrack(cfg)
