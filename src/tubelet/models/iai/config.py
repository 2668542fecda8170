"""Arguments of :class:`~tubelet.models.iai.model.IAICondInst`: paper defaults, a CPU preset."""
from __future__ import annotations

from dataclasses import dataclass, field

from tubelet.models.condinst.model import CondInstConfig


@dataclass
class IAICondInstConfig:
    """Arguments of :class:`IAICondInst` (``condinst`` builds the wrapped segmenter)."""
    # the image model; ResNet-50 so the defaults below (the paper's widths) fit its 2048-ch C5
    condinst: CondInstConfig = field(default_factory=lambda: CondInstConfig(backbone="resnet50"))
    num_ids: int = 20                 # N ID slots incl. "new" (20 YTVIS19; 25 YTVIS21 / OVIS)
    assoc_dim: int = 256              # association block width D (256 paper)
    self_heads: int = 4               # self-attention heads (4)
    global_heads: int = 2             # long-term attention heads (2)
    local_heads: int = 2              # short-term attention heads (2)
    local_window: int = 15            # short-term window side (15)
    ffn_dim: int = 1024               # FFN hidden width (1024)
    dw_kernel: int = 5                # depthwise conv in the FFN (5)
    drop_path: float = 0.1            # stochastic depth (0.1)
    use_association: bool = True      # Table 4: the association module (block, bank, memory)
    use_global: bool = True           # Table 5: long-term memory attention
    use_local: bool = True            # Table 5: short-term memory attention
    use_projector: bool = True        # Table 5: classification projector (else block output only)
    # the level the block, ID bank and memory work on: "c5" (stride 32, the paper) or "c4"
    # (stride 16, a CPU deviation for small frames: see the module docstring)
    assoc_level: str = "c5"
    memory_every: int = 3             # a global entry every 3 frames (or on a new instance)
    memory_cap: int | None = 16       # global entries kept (None = unbounded, the original)
    id_prior_prob: float = 0.01       # ID logits' initial probability
    id_loss_weight: float = 1.0       # weight of the ID loss (1, Eq. 3)
    # training slots: "appearance" = 0, 1, ... in order of first appearance, as the paper hands
    # out IDs (S, S+1, ...; trains mostly the first few slots); "random" = a random permutation
    # of 0..N-2 per clip (AOT's ID permutation). Measured at the CPU budgets (session 6): the
    # paper's assigner scores 3.7 vs 1.2 AP on the bench split, 35.3 vs 5.0 on DAVIS 8+2
    slot_order: str = "appearance"
    cls_thr: float = 0.1              # inference: best class probability > this
    id_thr: float = 0.1               # inference: best ID probability > this
    pre_nms_topk: int = 1000          # inference: candidates before NMS
    nms_thr: float = 0.5              # inference: class-agnostic box NMS IoU
    max_detections: int = 10          # inference: detections per frame
    max_mask_lost: float = 0.9        # inference: drop a mask losing more than this to better ones
    first_frame_weights: tuple[float, float] = (1.0, 0.5)  # ranking (cls, id) weights, frame 0
    later_weights: tuple[float, float] = (0.5, 1.0)        # ... on later frames

    @classmethod
    def paper(cls, num_classes: int = 40,
              pretrained: str | None = "imagenet") -> "IAICondInstConfig":
        """ResNet-50, width 256, N = 20 (the paper; it starts from COCO CondInst weights, which are
        not available here, hence ImageNet)."""
        return cls(condinst=CondInstConfig(num_classes=num_classes, backbone="resnet50",
                                           pretrained=pretrained))

    @classmethod
    def cpu(cls, num_classes: int = 10, pretrained: str | None = None) -> "IAICondInstConfig":
        """MobileNetV2, narrow: for 2 CPU cores at 192x320 (objects of 10-80 px)."""
        return cls(condinst=CondInstConfig(
            num_classes=num_classes, backbone="mobilenet_v2", pretrained=pretrained,
            fpn_channels=64, num_convs=2, size_boundaries=(32, 64, 128, 256),
            mask_branch_channels=64, mask_branch_convs=2, max_proposals=64),
            assoc_dim=128, ffn_dim=512)  # 2 x 128 + 64 = MobileNetV2's 320 C5 channels
