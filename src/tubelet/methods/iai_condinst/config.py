"""Configuration of ``iai-condinst``; YAML presets under ``configs/`` map onto it 1:1.

The paper's ablations are switches of the model config (``model.model.*``) and the tracker:

=====================================  ===================================================
row (IAI paper, Tables 4 and 5)        overrides
=====================================  ===================================================
per-frame CondInst + greedy tracker    ``model.tracker=greedy model.model.use_association=false
                                       model.model.id_thr=0 model.model.id_loss_weight=0
                                       model.model.first_frame_weights=[1,0]
                                       model.model.later_weights=[1,0]``
ID head, no association module         ``model.model.use_association=false``
local (short-term) memory only         ``model.model.use_global=false``
global (long-term) memory only         ``model.model.use_local=false``
no classification projector            ``model.model.use_projector=false``
=====================================  ===================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tubelet.methods.track_by_detect import OnlineConfig
from tubelet.models.iai.config import IAICondInstConfig


def _cpu_iai() -> IAICondInstConfig:
    # IAICondInstConfig() is the paper's ResNet-50 at width 256; the CPU preset is MobileNetV2 with
    # association width 128 (2 x 128 + 64 = its 320 C5 channels), random init unless configured.
    return IAICondInstConfig.cpu(num_classes=10, pretrained=None)


@dataclass
class IAIMethodConfig(OnlineConfig):
    """OnlineConfig (tracker choice and its configs, test resize, normalisation) + the model.

    ``tracker`` defaults to ``iai``, the Hungarian ID assigner over the ID head's probabilities
    (:mod:`tubelet.trackers.iai_assign`); ``greedy`` / ``naive`` also work (ablation rows), their
    track identities are mapped to ID slots in order of appearance for the memory writes.
    """
    tracker: str = "iai"
    model: IAICondInstConfig = field(default_factory=_cpu_iai)  # CondInst + ID head + association
