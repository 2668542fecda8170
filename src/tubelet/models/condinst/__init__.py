"""CondInst (Tian et al. 2020): FCOS detector + dynamic mask heads, shared by several methods."""
from tubelet.models.condinst.dynamic_mask import DynamicMaskHead
from tubelet.models.condinst.fcos import FCOSHead
from tubelet.models.condinst.mask_branch import MaskBranch
from tubelet.models.condinst.model import CondInst, CondInstConfig, HeadOutputs
from tubelet.models.condinst.postprocess import Detections
from tubelet.models.condinst.targets import FCOSTargets, fcos_targets

__all__ = ["CondInst", "CondInstConfig", "HeadOutputs", "Detections", "FCOSHead", "MaskBranch",
           "DynamicMaskHead", "FCOSTargets", "fcos_targets"]
