"""condinst-track's per-frame step: duplicates of one object (one per class) reach the tracker once."""
import numpy as np
import torch

from tubelet.engine.config import load_experiment
from tubelet.methods import build_method
from tubelet.models.condinst import Detections


def _fake_detections(h, w):
    masks = torch.zeros(3, h, w, dtype=torch.bool)
    masks[0, 10:30, 10:40] = True
    masks[1] = masks[0]                    # the same object, second class
    masks[2, 40:60, 50:90] = True          # another object
    n, c = 3, 10
    return [Detections(boxes=torch.zeros(n, 4), scores=torch.tensor([0.3, 0.5, 0.2]),
                       labels=torch.tensor([0, 1, 2]), class_probs=torch.rand(n, c),
                       masks=masks, features=torch.zeros(n, 32), centerness=torch.ones(n),
                       locations=torch.zeros(n, 2), levels=torch.zeros(n, dtype=torch.long))]


def _method(**over):
    cfg = load_experiment("configs/condinst_track_tiny.yaml",
                          [f"model.{k}={v}" for k, v in over.items()])
    m = build_method(cfg.method, cfg.model).eval()
    m.embed_head = None
    m.segmenter.predict = lambda images, output_sizes, keep=None: _fake_detections(*output_sizes[0])
    return m


def test_pre_track_nms_keeps_the_best_of_duplicates():
    frame = np.zeros((64, 96, 3), np.uint8)
    inst = _method(pre_track_nms=0.5).detect_frame(frame)
    assert len(inst) == 2
    np.testing.assert_allclose(inst.scores, [0.5, 0.2])  # the 0.5 duplicate wins, order by score
    assert inst.masks[0, 15, 15] and inst.masks[1, 45, 60]


def test_pre_track_nms_off_passes_everything():
    inst = _method(pre_track_nms=0).detect_frame(np.zeros((64, 96, 3), np.uint8))
    assert len(inst) == 3
