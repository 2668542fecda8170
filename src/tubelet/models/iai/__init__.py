"""IAI, Instance As Identity (Zhu et al. 2022), on CondInst: the pure model pieces.

ID head and targets (``id_head``), ID bank (``id_bank``), attention primitives (``attention``), the
hybrid association block (``association``), its memory (``memory``), the classification projector
(``projector``), per-frame post-processing (``postprocess``), the per-frame state and the
projector's wiring (``frame``), the config (``config``) and the composed model (``model``).
"""
from tubelet.models.iai.association import AssociationBlock, BlockOutput
from tubelet.models.iai.attention import (DropPath, local_window_attention, multihead_attention,
                                          sine_positions)
from tubelet.models.iai.id_bank import IDBank, id_label_map
from tubelet.models.iai.id_head import IDHead, clip_id_slots, id_loss, id_targets
from tubelet.models.iai.memory import AssociationMemory
from tubelet.models.iai.config import IAICondInstConfig
from tubelet.models.iai.frame import FrameOutputs, IAIState, PendingFrame
from tubelet.models.iai.model import IAICondInst
from tubelet.models.iai.postprocess import IAIDetections, paint_masks, select_iai_candidates
from tubelet.models.iai.projector import ClassificationProjector

__all__ = ["AssociationBlock", "BlockOutput", "DropPath", "local_window_attention",
           "multihead_attention", "sine_positions", "IDBank", "id_label_map", "IDHead",
           "clip_id_slots", "id_loss", "id_targets", "AssociationMemory", "FrameOutputs",
           "IAICondInst", "IAICondInstConfig", "IAIState", "PendingFrame", "IAIDetections",
           "paint_masks", "select_iai_candidates", "ClassificationProjector"]
