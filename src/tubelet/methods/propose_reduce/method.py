"""``propose-reduce``: Seq Mask R-CNN (Lin et al., ICCV 2021) with the category-aware sequence
reduction of the 2021 YouTube-VIS challenge paper. Offline: it indexes the video.

Training (``losses = method(batch)``, clips of 2 frames = (reference, current) pairs):
the Mask R-CNN losses (RPN, box, mask) on the current frame, plus the Seq-Prop head's soft IoU
loss (supplementary Eq. 2): up to ``max_objects`` objects visible in both frames get memory masks
from the mask head on their ground-truth reference boxes (detached, notes §1), the head segments
them in the current frame, soft aggregation (Eq. 1) makes them compete for pixels.

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
from tubelet.methods.propose_reduce.config import (REDUCTIONS, ProposeReduceConfig,
                                                   reduce_config)
from tubelet.methods.propose_reduce.inference import (SequenceProposals, frame_outputs,
                                                      reduce_to_instances)
from tubelet.methods.registry import register_method
from tubelet.methods.track_by_detect import normalize_images, preprocess_frame
from tubelet.models.seq_mask_rcnn import (FrameFeatures, FrameMaskRCNN, PropagationMemory,
                                          SeqPropHead, mask_boxes, soft_aggregate, soft_iou_loss)
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
        if cfg.num_keys < 1:
            raise InputError(f"must be >= 1, got {cfg.num_keys}", field="model.num_keys")
        self.cfg = cfg
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.rcnn = FrameMaskRCNN.from_config(cfg.model)
        widths = self.rcnn.backbone.out_channels
        self.prop = SeqPropHead.from_config(cfg.seq_prop, in_channels=cfg.model.fpn_channels,
                                            c2_channels=widths["c2"], c3_channels=widths["c3"])
        self.set_categories([(i + 1, f"class{i + 1}") for i in range(cfg.model.num_classes)])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` -> ImageNet-normalised float (:func:`normalize_images`)."""
        return normalize_images(images, self.pixel_mean, self.pixel_std)

    # ------------------------------------------------------------------------------ training
    def train_dataset(self, gt, image_root: str, data_cfg, seed: int):
        if data_cfg.clip.num_frames != 2:
            raise InputError(f"propose-reduce trains on (reference, current) pairs: "
                             f"num_frames must be 2, got {data_cfg.clip.num_frames}",
                             field="data.clip.num_frames")
        return super().train_dataset(gt, image_root, data_cfg, seed)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """batch: ``images`` uint8 ``[B, 2, 3, H, W]`` (frame 0 = reference, 1 = current),
        ``targets`` B x 2 frame dicts, ``image_sizes`` B valid (h, w). Returns the five Mask
        R-CNN losses, ``loss_prop`` and the logging-only ``prop_objects`` (objects per pair)."""
        images = batch["images"].to(self.pixel_mean.device)
        b, t = images.shape[:2]
        if t != 2:
            raise ValueError(f"propose-reduce trains on frame pairs, got clips of {t} frames")
        sizes = [tuple(s) for s in batch.get("image_sizes", [images.shape[-2:]] * b)]
        feats = self.rcnn.extract(self.normalize(images.flatten(0, 1)),  # [2B, 3, H, W]
                                  [s for s in sizes for _ in range(2)])
        targets = [tg for clip in batch["targets"] for tg in clip]  # 2B frame targets
        det = list(range(2 * b)) if self.cfg.ref_det_loss else list(range(1, 2 * b, 2))
        losses = self.rcnn.losses(feats.frames(det), [targets[i] for i in det])
        prop, objects = [], 0
        for i in range(b):
            loss, n = self._prop_loss(feats, 2 * i, 2 * i + 1, targets[2 * i],
                                      targets[2 * i + 1], sizes[i])
            if n:
                prop.append(loss)
                objects += n
        if prop:
            loss_prop = torch.stack(prop).mean()
        else:  # no shared object in the batch: a zero that still reaches every head parameter
            loss_prop = sum(p.sum() for p in self.prop.parameters()) * 0.0
        losses["loss_prop"] = self.cfg.prop_loss_weight * loss_prop
        losses["prop_objects"] = torch.tensor(objects / b)
        return losses

    def _prop_loss(self, feats: FrameFeatures, ref: int, cur: int, tref: dict, tcur: dict,
                   size: tuple[int, int]) -> tuple[torch.Tensor | None, int]:
        """Soft IoU loss of propagating reference frame ``ref``'s objects into frame ``cur``.

        Objects: identities visible in both frames, the first ``max_objects`` in the
        reference target's order (deterministic, so a resumed run draws the same).
        """
        ids_r, ids_c = tref["ids"].tolist(), tcur["ids"].tolist()
        shared = [j for j, o in enumerate(ids_r) if o in ids_c][: self.cfg.max_objects]
        if not shared:
            return None, 0
        h, w = size
        rows_c = [ids_c.index(ids_r[j]) for j in shared]
        fr, fc = feats.frames(ref), feats.frames(cur)
        with torch.no_grad():  # memory masks are detached (notes §1)
            mem_masks = self.rcnn.mask_probs_for_boxes(
                fr, [tref["boxes"][shared]], [tref["labels"][shared]])[0]  # [M, h, w]
        keys, values = self.prop.encode_memory(fr.p2, mem_masks)  # [M, D_k, h16, w16], ...
        probs = self.prop(keys[:, :, None], values[:, :, None], fc.p2, fc.c3, fc.c2,
                          out_size=(h, w))  # [M, h, w]
        agg = soft_aggregate(probs)[1:]  # [M, h, w] objects after Eq. 1
        gt = tcur["masks"][rows_c][:, :h, :w].to(agg.device)  # [M, h, w]
        return soft_iou_loss(agg, gt), len(shared)

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
        for t in frames:
            feats = self._features(video, t)
            h, w = feats.image_sizes[0]
            probs = head(mem.keys, mem.values, feats.p2, feats.c3, feats.c2,
                         out_size=(h, w))  # [K, h, w] per object
            probs = soft_aggregate(probs)[1:]  # objects compete for pixels (supp. Eq. 1)
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
