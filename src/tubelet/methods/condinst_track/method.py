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

from typing import Generator, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from tubelet.engine.method import FrameOutput, VISMethod
from tubelet.engine.registry import register_method
from tubelet.methods.condinst_track.config import CondInstTrackConfig
from tubelet.models.condinst.model import CondInst
from tubelet.models.embed_head import EmbedHead, auxiliary_cosine_loss, contrastive_loss
from tubelet.ops.seq_nms import mask_nms
from tubelet.structures import VideoInstances, encode_many
from tubelet.trackers import build_tracker


def resize_for_test(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


class CondInstTrack(VISMethod):
    def __init__(self, cfg: CondInstTrackConfig):
        super().__init__()
        self.cfg = cfg
        self.segmenter = CondInst.from_config(cfg.model)
        self.embed_head = (EmbedHead(cfg.model.fpn_channels, cfg.embed_dim, cfg.embed_dim,
                                     cfg.embed_layers) if cfg.embed else None)
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.set_categories([(i + 1, f"class{i + 1}") for i in range(cfg.model.num_classes)])
        if cfg.tracker == "memory" and not cfg.embed:
            raise ValueError("tracker=memory needs embed=true (the memory bank matches embeddings)")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` -> normalised float."""
        return (images.float() - self.pixel_mean) / self.pixel_std

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
    def make_tracker(self):
        name = self.cfg.tracker
        cfg = getattr(self.cfg, name, None)
        return build_tracker(name, cfg, category_ids=self.category_ids.tolist())

    @torch.inference_mode()
    def detect(self, frame: np.ndarray):
        """One RGB uint8 ``[H, W, 3]`` frame -> FrameInstances at the frame's size."""
        h, w = frame.shape[:2]
        nh, nw = resize_for_test(h, w, self.cfg.test_short_side, self.cfg.test_max_size)
        img = torch.from_numpy(np.array(frame, dtype=np.uint8)).to(self.pixel_mean.device)
        img = img.permute(2, 0, 1)[None]  # [1, 3, H, W]
        if (nh, nw) != (h, w):
            img = F.interpolate(img.float(), size=(nh, nw), mode="bilinear", align_corners=False)
        img = self.normalize(img)
        if self.channels_last:
            img = img.contiguous(memory_format=torch.channels_last)
        det = self.segmenter.predict(img, output_sizes=[(h, w)])[0]
        emb = None
        if self.embed_head is not None:
            emb = self.embed_head(det.features)
        inst = det.to_frame_instances(self.category_ids.tolist(), emb)
        if self.cfg.pre_track_nms > 0 and len(inst) > 1:
            inst = inst[mask_nms(inst.scores, inst.masks, iou_threshold=self.cfg.pre_track_nms)]
        return inst

    def _predict(self, frames: Iterable[np.ndarray]) -> Generator[FrameOutput, None, VideoInstances]:
        self.eval()
        tracker = self.make_tracker()
        tracker.reset()
        size = None
        for t, frame in enumerate(frames):
            size = frame.shape[:2]
            inst = self.detect(frame)
            res = tracker.update(inst)
            keep = res.track_ids >= 0
            yield FrameOutput(t, encode_many(inst.masks[keep]), res.track_ids[keep],
                              inst.scores[keep], inst.labels[keep])
        if size is None:
            raise ValueError("predict_video got no frames")
        return tracker.finalize()


@register_method("condinst-track", CondInstTrackConfig)
def build_condinst_track(cfg: CondInstTrackConfig) -> CondInstTrack:
    return CondInstTrack(cfg)
