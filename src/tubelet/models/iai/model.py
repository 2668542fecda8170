"""IAI on CondInst (Zhu et al., "Instance As Identity", 2022): the model, by composition.

Per frame (REFERENCE_NOTES §3)::

    image [B, 3, H, W] -> backbone C3, C4, C5
    C5 -> 1x1 conv -> x [B, D, H/32, W/32] -> association block (memory) -> y
    C5' = concat[x, y, 1x1 conv C5]  (the classification projector; C5's channel count)
    C3, C4, C5' -> FPN P3..P7 -> CondInst heads (class, box, centerness, controller, mask branch)
                              -> ID head (N slots) on P3..P7

Stride-16 variant (``assoc_level="c4"``, not in the paper): on 192-pixel CPU frames C5 is a 6 x 10
grid, and the ID bank's 33-pixel patches dilute a 20-pixel object's identity into the background
around it. With ``c4`` the block, the ID bank (kernel 17, stride 16) and the memory work on C4;
the projector's concatenation replaces C4, and C5 becomes ``concat[maxpool(y), 1x1 conv C5]`` so
that every FPN level sees the associated features (:class:`ClassificationProjector`).

Memory writes: once a frame's IDs are known (ground truth in training, the tracker's assignment at
inference), its ID mask goes through the ID bank (E) and the block stores keys and
``Linear_v(LN(x) + E)`` (:mod:`tubelet.models.iai.memory` decides global vs local).

Training (:meth:`IAICondInst.forward`): a clip of T frames in temporal order, the memory written
with the ground-truth ID masks (teacher forcing). Losses: CondInst's four and the ID focal loss
(times ``id_loss_weight``), normalised over all B*T frames as CondInst does over a batch.

Inference: ``state = model.new_state()``; per frame ``dets = model.detect(image, state)`` then
``model.write_memory(state, ids)`` with the slot the tracker gave each detection (-1 = none).
After :meth:`IAICondInst.fuse_for_inference` (``tubelet predict``) the parts before and after the
association block run as two TorchScript graphs frozen per input shape (the block itself, whose
memory grows and shrinks, stays eager).

The backbone's C5 must be replaced before the FPN, which :meth:`CondInst.forward_heads` does not
allow, so :meth:`IAICondInst.forward_frame` runs CondInst's public submodules itself and mirrors
forward_heads' location bookkeeping (see ``_head_outputs``) until CondInst grows that hook.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tubelet.models.condinst.model import CondInst, HeadOutputs, flatten_levels
from tubelet.models.condinst.postprocess import paste_masks, scale_boxes
from tubelet.models.frozen import FrozenByShape
from tubelet.models.iai.association import AssociationBlock, BlockOutput
from tubelet.models.iai.config import IAICondInstConfig
from tubelet.models.iai.frame import FrameOutputs, IAIState, PendingFrame, rewire
from tubelet.models.iai.id_bank import IDBank, id_label_map
from tubelet.models.iai.id_head import IDHead, clip_id_slots, id_loss, id_targets
from tubelet.models.iai.memory import AssociationMemory
from tubelet.models.iai.postprocess import IAIDetections, paint_masks, select_iai_candidates
from tubelet.models.iai.projector import ClassificationProjector


class IAICondInst(nn.Module):
    """CondInst + ID head + ID bank + association block + projector; see the module docstring and
    :class:`IAICondInstConfig` for every keyword argument."""

    def __init__(self, condinst: CondInst, num_ids: int = 20, assoc_dim: int = 256,
                 self_heads: int = 4, global_heads: int = 2, local_heads: int = 2,
                 local_window: int = 15, ffn_dim: int = 1024, dw_kernel: int = 5,
                 drop_path: float = 0.1, use_association: bool = True, use_global: bool = True,
                 use_local: bool = True, use_projector: bool = True, assoc_level: str = "c5",
                 memory_every: int = 3,
                 memory_cap: int | None = 16, id_prior_prob: float = 0.01,
                 id_loss_weight: float = 1.0, slot_order: str = "appearance",
                 cls_thr: float = 0.1, id_thr: float = 0.1,
                 pre_nms_topk: int = 1000, nms_thr: float = 0.5, max_detections: int = 10,
                 max_mask_lost: float = 0.9,
                 first_frame_weights: tuple[float, float] = (1.0, 0.5),
                 later_weights: tuple[float, float] = (0.5, 1.0)):
        super().__init__()
        self.condinst = condinst
        self.num_ids = num_ids
        self.id_head = IDHead(condinst.fpn.channels, num_ids, id_prior_prob)
        self.projector = self.block = self.id_bank = None
        channels, strides = condinst.backbone.out_channels, condinst.backbone.strides
        if assoc_level not in ("c4", "c5") or assoc_level not in channels:
            raise ValueError(f"assoc_level must be 'c4' or 'c5' (a level of the backbone), "
                             f"got {assoc_level!r}")
        self.assoc_level = assoc_level
        if use_association:
            self.projector = ClassificationProjector(
                channels[assoc_level], assoc_dim, use_projector,
                top_channels=channels["c5"] if assoc_level != "c5" else None)
            self.block = AssociationBlock(assoc_dim, self_heads, global_heads, local_heads,
                                          local_window, ffn_dim, dw_kernel, drop_path,
                                          use_global, use_local)
            self.id_bank = IDBank(num_ids, assoc_dim, strides[assoc_level])
        self.memory_every, self.memory_cap = memory_every, memory_cap
        self.id_loss_weight = id_loss_weight
        if slot_order not in ("random", "appearance"):
            raise ValueError(f"slot_order must be 'random' or 'appearance', got {slot_order!r}")
        self.slot_order = slot_order
        self.cls_thr, self.id_thr = cls_thr, id_thr
        self.pre_nms_topk, self.nms_thr = pre_nms_topk, nms_thr
        self.max_detections, self.max_mask_lost = max_detections, max_mask_lost
        self.first_frame_weights = tuple(first_frame_weights)
        self.later_weights = tuple(later_weights)
        self.frozen: tuple[FrozenByShape, FrozenByShape] | None = None  # fuse_for_inference
        self._all_modules: list[nn.Module] | None = None  # detect's mode check, built once

    @classmethod
    def from_config(cls, cfg: IAICondInstConfig, **overrides) -> "IAICondInst":
        """Builds ``CondInst.from_config(cfg.condinst)`` and wraps it with the other fields."""
        kwargs = {k: v for k, v in vars(cfg).items() if k != "condinst"}
        kwargs.update(overrides)
        return cls(CondInst.from_config(cfg.condinst), **kwargs)

    def new_memory(self) -> AssociationMemory:
        return AssociationMemory(every=self.memory_every, cap=self.memory_cap)

    def new_state(self) -> IAIState:
        """A fresh streaming state (call once per video)."""
        return IAIState(memory=self.new_memory())

    # ------------------------------------------------------------------------------ one frame
    def forward_frame(self, images: Tensor, memory: AssociationMemory | None = None,
                      lazy_controller: bool = False) -> FrameOutputs:
        """images ``[B, 3, H, W]`` normalised + memory of earlier frames -> :class:`FrameOutputs`
        (``lazy_controller`` as in :meth:`CondInst.forward_heads`)."""
        if self.frozen is not None and lazy_controller and not self.training:
            return self._forward_frozen(images, memory)
        feats = self.condinst.backbone(images)
        block = None
        if self.block is not None:
            x = self.projector.block_input(feats[self.assoc_level])  # [B, D, H/s, W/s]
            block = self._read_memory(x, memory)
            feats = self._rewire(feats, x, block.out)
        heads, id_logits = self._heads(images, feats, lazy_controller)
        return FrameOutputs(heads, id_logits, block)

    def _read_memory(self, x: Tensor, memory: AssociationMemory | None) -> BlockOutput:
        """The association block on x ``[B, D, h, w]`` with the memory's entries (if any)."""
        return self.block(x, memory.global_kv() if memory is not None else None,
                          memory.local_kv() if memory is not None else None)

    def _rewire(self, feats: dict[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """:func:`rewire` with this model's projector and level."""
        return rewire(self.projector, self.assoc_level, feats, x, y)

    def fuse_for_inference(self) -> None:
        """At inference (``predict``), run the frame before and after the association block as
        TorchScript graphs frozen per input shape (:class:`FrozenByShape`). One-way, like
        BatchNorm folding."""
        self.frozen = (FrozenByShape(self, self._before_block),
                       FrozenByShape(self, self._after_block))
        self._all_modules = None  # BatchNorm folding may have replaced submodules

    def _before_block(self, images: Tensor) -> tuple[Tensor, ...]:
        """The frozen frame before the block: images ``[B, 3, H, W]`` -> the backbone levels in
        ``out_features`` order, then the block's input ``x`` ``[B, D, h, w]`` if associating."""
        feats = self.condinst.backbone(images)
        levels = tuple(feats[k] for k in self.condinst.backbone.out_features)
        if self.block is None:
            return levels
        return levels + (self.projector.block_input(feats[self.assoc_level]),)

    def _after_block(self, *tensors: Tensor) -> tuple:
        """The frozen frame after the block: :meth:`_before_block`'s outputs, then the block
        output ``y`` if associating -> :meth:`CondInst.dense_from_features`' tuple + the ID
        logits ``[B, L, N]``."""
        ci = self.condinst
        names = ci.backbone.out_features
        feats = dict(zip(names, tensors))
        if self.block is not None:
            feats = self._rewire(feats, *tensors[len(names):])
        dense = ci.dense_from_features(feats)
        return dense + (flatten_levels(self.id_head([dense[0][k] for k in ci.head_features])),)

    def _forward_frozen(self, images: Tensor, memory: AssociationMemory | None) -> FrameOutputs:
        """:meth:`forward_frame` (lazy controller) through the two frozen graphs."""
        before, after = self.frozen
        pre = before(images)
        block = None
        if self.block is None:
            dense = after(*pre)
        else:
            block = self._read_memory(pre[-1], memory)
            dense = after(*pre, block.out.contiguous())
        heads = self.condinst.heads_from_dense(dense[:-1], tuple(images.shape[-2:]))
        return FrameOutputs(heads, dense[-1], block)

    def _heads(self, images: Tensor, feats: dict[str, Tensor],
               lazy_controller: bool = False) -> tuple[HeadOutputs, Tensor]:
        """Backbone features (C5 already rewired) -> FPN -> CondInst heads and ID logits
        ``[B, L, N]`` (the ID branch runs on the same P3..P7 maps as the class branch)."""
        ci = self.condinst
        heads = ci.heads_from_features(feats, tuple(images.shape[-2:]), lazy_controller)
        id_logits = flatten_levels(self.id_head([heads.pyramid[k] for k in ci.head_features]))
        return heads, id_logits

    def _write(self, memory: AssociationMemory, frame: int, block: BlockOutput,
               labels: Tensor) -> bool:
        """Store a frame with its ID label map ``labels`` ``[B, H, W]`` (0..N, N = background)."""
        values = self.block.memory_values(block.normed, self.id_bank(labels))  # [B, hw, D]
        present = torch.stack([torch.bincount(lab.flatten(), minlength=self.num_ids + 1)
                               [: self.num_ids] > 0 for lab in labels])  # [B, N]
        return memory.write(frame, block.keys, values, present)

    # ------------------------------------------------------------------------------ training
    def forward(self, clips: Tensor, targets: list[list[dict]]) -> dict[str, Tensor]:
        """Teacher-forced training on clips.

        With the ground-truth ID masks as memory, only the association block depends on earlier
        frames: the backbone, FPN and heads run once on all B*T frames as one batch (batch
        statistics and loss normalisation over the clip, as CondInst on B*T images), and the
        block runs frame by frame in between.

        Args:
            clips: ``[B, T, 3, H, W]`` normalised frames in temporal order.
            targets: B lists of T dicts ``{"boxes": [M, 4] xyxy, "labels": [M], "masks":
                [M, H, W] bool, "ids": [M] clip-level identity}`` (CondInst's, plus "ids").

        Returns:
            ``{"loss_cls", "loss_box", "loss_ctr", "loss_mask", "loss_id"}`` scalars, each
            normalised over the B*T frames (positives summed over them).
        """
        heads, id_logits, assigned, id_t, flat_targets = self.teacher_forced(clips, targets)
        losses = self.condinst.compute_losses(heads, assigned, flat_targets)
        losses["loss_id"] = self.id_loss_weight * id_loss(
            id_logits, id_t, self.condinst.focal_alpha, self.condinst.focal_gamma)
        return losses

    def teacher_forced(self, clips: Tensor, targets: list[list[dict]]) -> tuple:
        """The teacher-forced pass of :meth:`forward`, before the losses.

        Returns:
            ``(heads, id_logits [B*T, L, N], assigned, id_targets [B*T, L, N], flat_targets)``:
            CondInst's head outputs and FCOS assignment of the B*T frames (clip-major), the ID
            logits and their targets (:func:`id_targets`), the frames' target dicts.
        """
        b, t = clips.shape[:2]
        if len(targets) != b or any(len(clip) != t for clip in targets):
            raise ValueError(f"targets must be {b} lists of {t} frame dicts")
        if any("ids" not in tg for clip in targets for tg in clip):
            raise ValueError("IAI training targets need 'ids' (clip-level identities)")
        slots, first = zip(*[clip_id_slots([tg["ids"] for tg in clip], self.num_ids,
                                           self._slot_order())
                             for clip in targets])  # B lists of T tensors [M_t]
        images = clips.flatten(0, 1)  # [B*T, 3, H, W], clip-major
        feats = self.condinst.backbone(images)
        if self.block is not None:
            x = self.projector.block_input(feats[self.assoc_level])  # [B*T, D, h, w]
            xs = x.unflatten(0, (b, t))  # [B, T, D, h, w]
            memory, outs = self.new_memory(), []
            for f in range(t):
                block = self.block(xs[:, f], memory.global_kv(), memory.local_kv())
                outs.append(block.out)
                if f < t - 1:  # the last frame's entry would go unused
                    labels = torch.stack([
                        id_label_map(slots[i][f].to(x.device), targets[i][f]["masks"].to(x.device),
                                     self.num_ids) for i in range(b)])  # [B, H, W]
                    self._write(memory, f, block, labels)
            y = torch.stack(outs, dim=1).flatten(0, 1)  # [B*T, D, h, w]
            feats = self._rewire(feats, x, y)
        heads, id_logits = self._heads(images, feats)
        flat_targets = [tg for clip in targets for tg in clip]  # B*T, clip-major
        assigned = self.condinst.assign(heads, flat_targets)
        dev = id_logits.device
        id_t = torch.stack([id_targets(assigned[i * t + f].gt_index, slots[i][f].to(dev),
                                       first[i][f].to(dev), self.num_ids)
                            for i in range(b) for f in range(t)])  # [B*T, L, N]
        return heads, id_logits, assigned, id_t, flat_targets

    def _slot_order(self) -> list[int] | None:
        """One clip's slot permutation (drawn from torch's global RNG, so seeded and resumable)."""
        if self.slot_order == "appearance":
            return None
        return torch.randperm(self.num_ids - 1).tolist()

    # ------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def detect(self, image: Tensor, state: IAIState, image_size: tuple[int, int] | None = None,
               output_size: tuple[int, int] | None = None) -> IAIDetections:
        """Detect one frame with the memory of the earlier ones.

        Args:
            image: ``[1, 3, H, W]`` normalised (padded) frame.
            state: the video's :class:`IAIState`; the frame becomes ``state.pending`` until
                :meth:`write_memory`.
            image_size: valid (h, w) inside the padding (default (H, W)).
            output_size: (H_out, W_out) for boxes and masks (default ``image_size``).

        Returns:
            :class:`IAIDetections`, at most ``max_detections``, best first, disjoint masks.
        """
        if image.shape[0] != 1:
            raise ValueError(f"detect streams one frame at a time, got a batch of {image.shape[0]}")
        # BatchNorm running statistics, no DropPath, whatever the caller left; the mode is only
        # switched (a walk over every submodule, ~20 ms a frame here) when something trains
        if self._all_modules is None:
            self._all_modules = list(self.modules())
        training = [m for m in self._all_modules if m.training]
        if training:
            self.eval()
        try:
            out = self.forward_frame(image, state.memory, lazy_controller=True)
        finally:
            for m in training:  # back to train mode: exactly the modules that were in it
                m.training = True
        heads, ci = out.heads, self.condinst
        image_size = tuple(image_size or image.shape[-2:])
        output_size = tuple(output_size or image_size)
        weights = self.first_frame_weights if state.frame_index == 0 else self.later_weights
        loc, scores, boxes = select_iai_candidates(
            heads.cls_logits[0], out.id_logits[0], heads.ctr_logits[0], heads.box_ltrb[0],
            heads.locations, image_size, weights, self.cls_thr, self.id_thr,
            self.pre_nms_topk, self.nms_thr, self.max_detections)
        logits = ci.mask_logits(heads, torch.zeros_like(loc), loc)  # [K, 1, h_o, w_o]
        masks = paste_masks(logits, ci.mask_out_stride, image_size, None, ci.mask_thr)
        masks, keep = paint_masks(masks, self.max_mask_lost)  # [K', h, w] valid frame
        loc, scores, boxes = loc[keep], scores[keep], boxes[keep]
        padded = masks.new_zeros(masks.shape[0], *image.shape[-2:])  # [K', H, W]
        padded[:, : image_size[0], : image_size[1]] = masks
        state.pending = PendingFrame(state.frame_index, out.block, padded)
        state.frame_index += 1
        if output_size != image_size:
            # nearest-exact keeps the painted masks disjoint and pixel centres aligned
            masks = (F.interpolate(masks[None].float(), size=output_size, mode="nearest-exact")[0]
                     > 0.5) if masks.shape[0] else masks.new_zeros(0, *output_size)
        return IAIDetections(
            boxes=scale_boxes(boxes, image_size, output_size), scores=scores,
            labels=heads.cls_logits[0, loc].argmax(dim=1),
            class_probs=torch.sigmoid(heads.cls_logits[0, loc]),
            id_probs=torch.sigmoid(out.id_logits[0, loc]),
            centerness=torch.sigmoid(heads.ctr_logits[0, loc]), masks=masks,
            locations=heads.locations[loc], levels=heads.levels[loc])

    @torch.no_grad()
    def write_memory(self, state: IAIState, ids: Tensor) -> bool:
        """Write the pending frame with the slot the tracker gave each of its detections.

        Args:
            ids: ``[K]`` long, one per detection of the last :meth:`detect` (in its order);
                -1 (or N-1, "new") = not written.

        Returns:
            True when the frame entered the global memory.
        """
        masks = self._pending(state).masks  # [K, H, W]
        if ids.shape[0] != masks.shape[0]:
            raise ValueError(f"{ids.shape[0]} IDs for {masks.shape[0]} detections")
        labels = id_label_map(ids.to(masks.device), masks, self.num_ids)
        return self._write_labels(state, labels[None])

    @torch.no_grad()
    def write_memory_labels(self, state: IAIState, labels: Tensor) -> bool:
        """Write the pending frame with any ID label map ``[1, H, W]`` (0..N, N = background,
        in the padded network-input frame)."""
        return self._write_labels(state, labels)

    @staticmethod
    def _pending(state: IAIState) -> PendingFrame:
        if state.pending is None:
            raise ValueError("no detected frame to write: call detect() first")
        return state.pending

    def _write_labels(self, state: IAIState, labels: Tensor) -> bool:
        pending = self._pending(state)
        if labels.shape[-2:] != pending.masks.shape[-2:]:
            raise ValueError(f"ID label map of size {tuple(labels.shape[-2:])} for a frame of "
                             f"size {tuple(pending.masks.shape[-2:])}")
        state.pending = None  # written once
        if self.block is None:
            return False  # no association module: nothing is remembered
        return self._write(state.memory, pending.frame, pending.block, labels)
