"""``propose-reduce``: Seq Mask R-CNN (Lin et al., ICCV 2021) with the category-aware sequence
reduction of the 2021 YouTube-VIS challenge paper. Offline: it indexes the video.

Training (``losses = method(batch)``, clips of 2 frames = (reference, current) pairs, the
released code's; longer clips propagate through every later frame, the memory growing with each
prediction, as STM's 3-frame training): the Mask R-CNN losses (RPN, box, mask) on the current
frame(s), plus the Seq-Prop head's soft IoU
loss (supplementary Eq. 2): up to ``max_objects`` objects visible in both frames get memory masks
from the mask head on their ground-truth reference boxes (detached, notes §1), the head segments
them in the current frame, soft aggregation (Eq. 1) makes them compete for pixels. Option
``prop_ce_weight`` adds STM's pixel cross-entropy on the aggregation (``loss_prop_ce``).

Inference (``predict_video``), notes §1 and Sec. 3 of the paper:
1. K key frames ``int(k (T-1)/(K-1))``; Mask R-CNN detections on each (score > 0.2, O = 10),
   greedy mask NMS 0.2 among them.
2. From each key frame, propagate its objects forward to the last frame and backward to the
   first, with a :class:`PropagationMemory` (key frame + a frame every ``mem_step``, capped).
   Every frame is read by index (``video[t]``, decoded on demand through the source's bounded
   cache) and its masks are stored at once as RLE at the original size; each non-empty mask's
   box is classified by the box head and summed into the sequence's score.
3. Sequence scores, sequence IoU on the RLEs, then ``reduce_sequences`` (agnostic NMS 0.9 +
   category-aware soft-NMS by default) -> one record per (sequence, class).
4. A FrameOutput per frame, at the end.

Peak memory does not grow with T: one frame's features and the capped memory are alive at a
time; per frame only the RLEs (and no decoded frame) are kept.
"""
from __future__ import annotations

from typing import Generator

import numpy as np
import torch
import torch.nn.functional as F

from tubelet.errors import InputError
from tubelet.methods.base import FrameOutput, VISMethod
from tubelet.methods.propose_reduce.config import (PROP_MEMORIES, REDUCTIONS,
                                                   ProposeReduceConfig, reduce_config)
from tubelet.methods.propose_reduce.inference import (SequenceProposals, frame_outputs,
                                                      reduce_to_instances)
from tubelet.methods.registry import register_method
from tubelet.methods.track_by_detect import normalize_images, preprocess_frame
from tubelet.models.seq_mask_rcnn import (MEM_STRIDES, FrameFeatures, FrameMaskRCNN,
                                          PropagationMemory, SeqPropHead, mask_boxes,
                                          soft_aggregate, soft_aggregate_ce_loss, soft_iou_loss)
from tubelet.ops.key_frames import key_frames
from tubelet.ops.seq_nms import mask_nms
from tubelet.structures import VideoInstances, encode_many
from tubelet.video import VideoSource


class ProposeReduce(VISMethod):
    paradigm = "offline"

    def __init__(self, cfg: ProposeReduceConfig):
        super().__init__()
        if cfg.reduction not in REDUCTIONS:
            raise InputError(f"unknown reduction {cfg.reduction!r}; choices: {list(REDUCTIONS)}",
                             field="model.reduction")
        if cfg.prop_memory not in PROP_MEMORIES:
            raise InputError(f"unknown memory source {cfg.prop_memory!r}; choices: "
                             f"{list(PROP_MEMORIES)}", field="model.prop_memory")
        if cfg.num_keys < 1:
            raise InputError(f"must be >= 1, got {cfg.num_keys}", field="model.num_keys")
        if cfg.seq_prop.mem_stride not in MEM_STRIDES:
            raise InputError(f"must be one of {list(MEM_STRIDES)}, got "
                             f"{cfg.seq_prop.mem_stride}",
                             field="model.seq_prop.mem_stride")
        self.cfg = cfg
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.rcnn = FrameMaskRCNN.from_config(cfg.model)
        self.prop = self.new_prop_head()
        self.set_categories([(i + 1, f"class{i + 1}") for i in range(cfg.model.num_classes)])

    def new_prop_head(self) -> SeqPropHead:
        """A freshly initialised Seq-Prop head for this detector's widths and ``cfg.seq_prop``
        (the constructor's; bench/seq_prop_probe.py re-initialises the head with it)."""
        widths = self.rcnn.backbone.out_channels
        return SeqPropHead.from_config(self.cfg.seq_prop, in_channels=self.cfg.model.fpn_channels,
                                       c2_channels=widths["c2"], c3_channels=widths["c3"])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` -> ImageNet-normalised float (:func:`normalize_images`)."""
        return normalize_images(images, self.pixel_mean, self.pixel_std)

    # ------------------------------------------------------------------------------ training
    def train_dataset(self, gt, image_root: str, data_cfg, seed: int):
        if data_cfg.clip.num_frames < 2:
            raise InputError(f"propose-reduce trains on (reference, current ...) clips: "
                             f"num_frames must be >= 2, got {data_cfg.clip.num_frames}",
                             field="data.clip.num_frames")
        return super().train_dataset(gt, image_root, data_cfg, seed)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """batch: ``images`` uint8 ``[B, T, 3, H, W]`` (frame 0 = reference, 1.. = current;
        T = 2 the released code's pairs), ``targets`` B x T frame dicts, ``image_sizes`` B valid
        (h, w). Returns the five Mask R-CNN losses, ``loss_prop`` (``loss_prop_ce`` with the
        option) and the logging-only ``prop_objects`` (objects per clip)."""
        images = batch["images"].to(self.pixel_mean.device)
        b, t = images.shape[:2]
        if t < 2:
            raise ValueError(f"propose-reduce trains on clips of >= 2 frames, got {t}")
        sizes = [tuple(s) for s in batch.get("image_sizes", [images.shape[-2:]] * b)]
        feats = self.rcnn.extract(self.normalize(images.flatten(0, 1)),  # [B T, 3, H, W]
                                  [s for s in sizes for _ in range(t)])
        targets = [tg for clip in batch["targets"] for tg in clip]  # B T frame targets
        det = [i for i in range(b * t) if self.cfg.ref_det_loss or i % t]
        losses = self.rcnn.losses(feats.frames(det), [targets[i] for i in det])
        return {**losses, **self.prop_losses(feats, targets, sizes, t)}

    def prop_losses(self, feats: FrameFeatures, targets: list[dict],
                    sizes: list[tuple[int, int]], t: int) -> dict[str, torch.Tensor]:
        """The Seq-Prop head's losses on a batch of B clips of ``t`` frames whose features
        ``feats`` (B t frames, clip-major) are extracted: ``loss_prop`` (``loss_prop_ce`` with the
        option), weighted, and the logging-only ``prop_objects`` (objects per clip). Each clip
        goes through :meth:`_prop_loss`; the losses are means over the clips with an object."""
        b = len(sizes)
        losses, prop, ce, objects = {}, [], [], 0
        for i in range(b):
            loss, loss_ce, n = self._prop_loss(feats, list(range(i * t, (i + 1) * t)),
                                               targets[i * t:(i + 1) * t], sizes[i])
            if n:
                prop.append(loss)
                ce.append(loss_ce)
                objects += n
        # no shared object in the batch: a zero that still reaches every head parameter
        zero = sum(p.sum() for p in self.prop.parameters()) * 0.0 if not prop else None
        losses["loss_prop"] = self.cfg.prop_loss_weight * (torch.stack(prop).mean() if prop
                                                           else zero)
        if self.cfg.prop_ce_weight:
            losses["loss_prop_ce"] = self.cfg.prop_ce_weight * (torch.stack(ce).mean() if ce
                                                                else zero)
        losses["prop_objects"] = torch.tensor(objects / b)
        return losses

    def _prop_loss(self, feats: FrameFeatures, frames: list[int], tgts: list[dict],
                   size: tuple[int, int]
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None, int]:
        """Soft IoU loss (and the auxiliary cross-entropy) of propagating the reference frame
        ``frames[0]``'s objects through ``frames[1:]`` -> ``(iou_loss, ce_loss, objects)``.

        Objects: identities of the reference that are visible in a later frame, the first
        ``max_objects`` in the reference target's order (deterministic, so a resumed run draws
        the same). The memory starts with the reference (mask-head masks on the GT boxes,
        detached, notes §1; the GT masks with ``prop_memory="gt"``); with more than one current
        frame each prediction (the aggregated probabilities, not detached) is written into the
        memory before the next frame, as STM trains on 3-frame clips. Losses: mean over the
        current frames in which an object is visible (an absent object's target is empty:
        background for the cross-entropy).
        """
        ids_r = tgts[0]["ids"].tolist()
        later = [tg["ids"].tolist() for tg in tgts[1:]]
        objs = [j for j, o in enumerate(ids_r) if any(o in ids for ids in later)]
        objs = objs[: self.cfg.max_objects]
        if not objs:
            return None, None, 0
        h, w = size
        fr = feats.frames(frames[0])
        if self.cfg.prop_memory == "gt":  # option: the ground-truth masks
            mem_masks = tgts[0]["masks"][objs][:, :h, :w].float()  # [M, h, w]
        else:
            with torch.no_grad():  # memory masks are detached (notes §1)
                mem_masks = self.rcnn.mask_probs_for_boxes(
                    fr, [tgts[0]["boxes"][objs]], [tgts[0]["labels"][objs]])[0]  # [M, h, w]
        keys, values = self.prop.encode_memory(fr.p2, mem_masks)  # [M, D_k, h16, w16], ...
        mem_k, mem_v = keys[:, :, None], values[:, :, None]  # [M, D, 1, h16, w16]
        ious, ces = [], []
        prior = mem_masks  # the previous frame's masks (used by the prior_mask option only)
        for step, (fi, tg) in enumerate(zip(frames[1:], tgts[1:]), 1):
            fc = feats.frames(fi)
            probs, logits = self.prop(mem_k, mem_v, fc.p2, fc.c3, fc.c2, out_size=(h, w),
                                      return_logits=True, prior=prior)  # [M, h, w] each
            agg = soft_aggregate(probs)[1:]  # [M, h, w] objects after Eq. 1
            prior = agg
            ids_c = tg["ids"].tolist()
            gt = torch.zeros_like(agg)  # [M, h, w]; absent objects stay empty
            for m, j in enumerate(objs):
                if ids_r[j] in ids_c:
                    gt[m] = tg["masks"][ids_c.index(ids_r[j])][:h, :w]
            if bool(gt.flatten(1).any(1).any()):
                ious.append(soft_iou_loss(agg, gt))
                if self.cfg.prop_ce_weight:
                    ces.append(soft_aggregate_ce_loss(logits, gt))
            if step < len(frames) - 1:  # the prediction becomes memory for the next frame
                k, v = self.prop.encode_memory(fc.p2, agg)
                mem_k = torch.cat([mem_k, k[:, :, None]], 2)
                mem_v = torch.cat([mem_v, v[:, :, None]], 2)
        ce = torch.stack(ces).mean() if ces else None
        return torch.stack(ious).mean(), ce, len(objs)

    # ------------------------------------------------------------------------------ inference
    def preprocess(self, frame: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``[H, W, 3]`` -> resized, normalised ``[1, 3, h, w]``
        (:func:`preprocess_frame`, as the online methods)."""
        return preprocess_frame(frame, self.cfg.test_short_side, self.cfg.test_max_size,
                                self.pixel_mean, self.pixel_std, self.channels_last)

    def _features(self, video: VideoSource, t: int) -> FrameFeatures:
        """Frame ``t`` decoded on demand (``video[t]``) -> its features; nothing is kept."""
        return self.rcnn.extract(self.preprocess(video[t]))

    def _to_rles(self, probs: torch.Tensor, size: tuple[int, int]) -> list[dict | None]:
        """``[K, h, w]`` probabilities at test size -> K RLEs at the original ``size`` (H, W)
        (notes §1: resize, then > 0.5); ``None`` for an empty mask."""
        if probs.shape[-2:] != size:
            probs = F.interpolate(probs[:, None], size=size, mode="bilinear",
                                  align_corners=False)[:, 0]  # [K, H, W]
        masks = (probs > self.cfg.prop_mask_thr).cpu().numpy()
        rles = encode_many(masks)
        return [r if m.any() else None for r, m in zip(rles, masks)]

    def _record(self, props: SequenceProposals, first: int, t: int, feats: FrameFeatures,
                probs: torch.Tensor, size: tuple[int, int]) -> None:
        """Store frame ``t`` of K sequences (``probs`` ``[K, h, w]`` at test size) as RLE and
        add the box-head distribution of every non-empty mask's box to their scores."""
        binary = probs >= self.cfg.prop_mask_thr  # [K, h, w]
        nonempty = binary.flatten(1).any(1)  # [K]
        dist = torch.zeros(len(probs), self.cfg.model.num_classes + 1)
        if bool(nonempty.any()):
            boxes = mask_boxes(binary[nonempty])  # [K', 4] tight box + 1 px (notes §1)
            dist[nonempty.cpu()] = self.rcnn.classify_boxes(feats, [boxes])[0].float().cpu()
        props.set_frame(first, t, self._to_rles(probs, size), dist.numpy(),
                        nonempty.cpu().numpy())

    def _propagate(self, video: VideoSource, props: SequenceProposals, first: int, t_key: int,
                   key_feats: FrameFeatures, key_masks: torch.Tensor, frames: range,
                   size: tuple[int, int]) -> None:
        """One pass from key frame ``t_key`` over ``frames`` (forward or backward) for the K
        objects of ``key_masks`` ``[K, h, w]`` (float {0, 1}), sequences ``first ..``."""
        head = self.prop
        mem = PropagationMemory(cap=head.mem_cap, mem_step=head.mem_step)
        mem.add_key_frame(t_key, *head.encode_memory(key_feats.p2, key_masks))
        prior = key_masks  # the previous frame's masks (used by the prior_mask option only)
        for t in frames:
            feats = self._features(video, t)
            h, w = feats.image_sizes[0]
            probs = head(mem.keys, mem.values, feats.p2, feats.c3, feats.c2,
                         out_size=(h, w), prior=prior)  # [K, h, w] per object
            probs = soft_aggregate(probs)[1:]  # objects compete for pixels (supp. Eq. 1)
            prior = probs
            self._record(props, first, t, feats, probs, size)
            if mem.should_write(t):  # memory written with the aggregated prediction
                mem.write(t, *head.encode_memory(feats.p2, probs))

    @torch.inference_mode()
    def propose(self, video: VideoSource, keys: list[int] | None = None) -> SequenceProposals:
        """Step 1-2 of the module docstring: the video's sequence proposals from the key frames
        ``keys`` (default ``key_frames(T, num_keys)``); ``props.key_of`` holds each sequence's
        key frame, so proposals of several key sets can share one pass (bench ablations)."""
        n = len(video)
        size = (video.height, video.width)
        props = SequenceProposals(n, self.cfg.model.num_classes)
        for t_key in key_frames(n, self.cfg.num_keys) if keys is None else keys:
            feats = self._features(video, t_key)
            det = self.rcnn.detect(feats, mask_probs=True)[0]  # probabilities [O, h, w]
            if len(det.scores) == 0:
                continue
            binary = det.masks > self.rcnn.mask_thr  # [O, h, w]
            keep = mask_nms(det.scores.cpu(), binary.cpu(), iou_threshold=self.cfg.key_nms_thr)
            keep = torch.as_tensor(keep, dtype=torch.long, device=binary.device)
            masks = binary[keep].float()  # [K, h, w] key-frame masks
            first = props.add(len(keep), key=t_key)
            # the key frame's sequence mask is the detector's own (probabilities, > 0.5)
            self._record(props, first, t_key, feats, det.masks[keep], size)
            self._propagate(video, props, first, t_key, feats, masks, range(t_key + 1, n), size)
            self._propagate(video, props, first, t_key, feats, masks, range(t_key - 1, -1, -1),
                            size)
        return props

    def _predict(self, video: VideoSource) -> Generator[FrameOutput, None, VideoInstances]:
        self.eval()
        if len(video) == 0:
            raise InputError("the video has no frames", getattr(video, "path", None))
        props = self.propose(video)
        result = reduce_to_instances(props, reduce_config(self.cfg), self.category_ids,
                                     video.height, video.width)
        yield from frame_outputs(result)
        return result


@register_method("propose-reduce", ProposeReduceConfig)
def build_propose_reduce(cfg: ProposeReduceConfig) -> ProposeReduce:
    return ProposeReduce(cfg)
