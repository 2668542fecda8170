"""``contrastive-online``: Deformable DETR + dynamic masks + contrastive embeddings, associated
online by the memory-bank tracker (YouTube-VIS 2022 1st place, IDOL-style)."""
from tubelet.methods.contrastive_online.config import ContrastiveOnlineConfig
from tubelet.methods.contrastive_online.inference import frame_instances, select_queries
from tubelet.methods.contrastive_online.method import ContrastiveOnline

__all__ = ["ContrastiveOnlineConfig", "ContrastiveOnline", "frame_instances", "select_queries"]
