"""IAI, Instance As Identity (Zhu et al. 2022) on CondInst: online VIS where the detector itself
predicts each instance's identity, reading a memory of the earlier frames' ID masks.

Training (``losses = method(batch)``): clips of T frames in temporal order (5 in the paper, gaps
in [1, 3]: ``data.clip``), the association memory written with the ground-truth ID masks (teacher
forcing); losses CondInst's four + the ID focal loss (:meth:`IAICondInst.forward`).

Inference (``predict_video``), per frame::

    det = model.detect(image, state)            # candidates, ranking, NMS, top 10, painting
    inst = to_frame_instances(det)              # class probability x centerness for the tracker
    result = tracker.update(inst)               # Hungarian ID assignment (tracker "iai")
    model.write_memory(state, slots(result))    # the memory learns the IDs the assigner picked

The video's memory (:class:`IAIState`) is created in :meth:`reset_video`; its global part is
capped (``model.memory_cap``) so memory stays flat on long videos.
"""
from __future__ import annotations

import torch

from tubelet.methods.iai_condinst.config import IAIMethodConfig
from tubelet.methods.iai_condinst.inference import SlotMap, to_frame_instances
from tubelet.methods.registry import register_method
from tubelet.methods.track_by_detect import TrackByDetect
from tubelet.models.iai import IAICondInst, IAIState
from tubelet.structures import FrameInstances
from tubelet.trackers import FrameResult


class IAIMethod(TrackByDetect):
    """``iai-condinst``: :class:`IAICondInst` behind the track-by-detect loop."""

    cfg: IAIMethodConfig

    def __init__(self, cfg: IAIMethodConfig):
        super().__init__(cfg)  # checks cfg.tracker against provided_fields()
        self.iai = IAICondInst.from_config(cfg.model)
        num_classes = cfg.model.condinst.num_classes
        self.set_categories([(i + 1, f"class{i + 1}") for i in range(num_classes)])
        self._state: IAIState | None = None
        self._slots = SlotMap(cfg.model.num_ids)

    def provided_fields(self) -> set[str]:
        return {"class_probs", "boxes", "id_probs"}

    # ------------------------------------------------------------------------------ training
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """batch: ``images`` uint8 ``[B, T, 3, H, W]`` (frames in temporal order) and ``targets``
        B lists of T dicts with ``ids`` (:mod:`tubelet.data.clips`) -> the five loss terms."""
        images = batch["images"].to(self.pixel_mean.device)  # [B, T, 3, H, W] uint8
        b, t = images.shape[:2]
        clips = self.normalize(images.flatten(0, 1)).unflatten(0, (b, t))  # [B, T, 3, H, W]
        return self.iai(clips, batch["targets"])

    # ------------------------------------------------------------------------------ inference
    def reset_video(self) -> None:
        self._state = self.iai.new_state()
        self._slots = SlotMap(self.cfg.model.num_ids)

    def detect(self, images: torch.Tensor, size: tuple[int, int]) -> FrameInstances:
        """images ``[1, 3, h, w]`` normalised -> the frame's detections at ``size`` (H, W), with
        the memory of the frames before (a first call without :meth:`reset_video` starts one)."""
        if self._state is None:
            self.reset_video()
        det = self.iai.detect(images, self._state, output_size=tuple(size))
        return to_frame_instances(det, self.category_ids.tolist())

    def on_tracked(self, t: int, inst: FrameInstances, result: FrameResult) -> None:
        """Write frame ``t`` into the memory with the slots of the identities the tracker picked
        (a detection the tracker dropped is left out of the ID mask, i.e. background)."""
        slots = torch.from_numpy(self._slots(result.track_ids))  # [K]
        with torch.inference_mode():
            self.iai.write_memory(self._state, slots)


@register_method("iai-condinst", IAIMethodConfig)
def build_iai_condinst(cfg: IAIMethodConfig) -> IAIMethod:
    return IAIMethod(cfg)
