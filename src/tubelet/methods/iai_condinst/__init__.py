"""``iai-condinst``: IAI, Instance As Identity, on CondInst (online; the detector predicts IDs)."""
from tubelet.methods.iai_condinst.config import IAIMethodConfig
from tubelet.methods.iai_condinst.inference import SlotMap, to_frame_instances
from tubelet.methods.iai_condinst.method import IAIMethod

__all__ = ["IAIMethodConfig", "IAIMethod", "SlotMap", "to_frame_instances"]
