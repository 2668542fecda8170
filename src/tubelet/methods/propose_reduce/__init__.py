"""``propose-reduce``: Seq Mask R-CNN (key-frame proposals, propagation, sequence reduction)."""
from tubelet.methods.propose_reduce.config import REDUCTIONS, ProposeReduceConfig, reduce_config
from tubelet.methods.propose_reduce.inference import (SequenceProposals, frame_outputs,
                                                      reduce_to_instances)
from tubelet.methods.propose_reduce.method import ProposeReduce

__all__ = ["REDUCTIONS", "ProposeReduceConfig", "reduce_config", "SequenceProposals",
           "frame_outputs", "reduce_to_instances", "ProposeReduce"]
