"""Inference pieces: candidate selection + NMS, mask pasting, box scaling."""
from __future__ import annotations

import math

import torch

from tubelet.models.condinst.postprocess import paste_masks, scale_boxes, select_candidates


def _logit(p):
    return math.log(p / (1 - p))


def test_select_candidates_by_hand():
    # 4 locations on one level, 2 classes
    locations = torch.tensor([[10.0, 10.0], [12.0, 10.0], [50.0, 50.0], [80.0, 10.0]])
    cls = torch.full((4, 2), _logit(0.01))
    cls[0, 0] = _logit(0.9)   # box A, class 0
    cls[1, 0] = _logit(0.8)   # box ~A, class 0 -> suppressed by NMS
    cls[1, 1] = _logit(0.6)   # same location, class 1 -> kept (class-aware NMS)
    cls[2, 1] = _logit(0.04)  # below the 0.05 threshold
    cls[3, 0] = _logit(0.5)   # far away
    ctr = torch.tensor([_logit(0.5), _logit(0.5), _logit(0.5), _logit(0.2)])
    ltrb = torch.tensor([[5.0, 5.0, 5.0, 5.0], [7.0, 5.0, 3.0, 5.0], [1.0, 1.0, 1.0, 1.0],
                         [20.0, 20.0, 20.0, 20.0]])
    c = select_candidates(cls, ctr, ltrb, locations, [slice(0, 4)], (40, 96))
    # scores = prob * centerness: 0.45 (loc 0, c0), 0.3 (loc 1, c1), 0.1 (loc 3, c0)
    assert c.loc_index.tolist() == [0, 1, 3] and c.labels.tolist() == [0, 1, 0]
    assert torch.allclose(c.scores, torch.tensor([0.45, 0.3, 0.1]), atol=1e-6)
    assert c.boxes[0].tolist() == [5, 5, 15, 15]
    assert c.boxes[2].tolist() == [60, 0, 96, 30]  # clipped to the (40, 96) image
    # pre-NMS top-k per level and the final cap
    c = select_candidates(cls, ctr, ltrb, locations, [slice(0, 2), slice(2, 4)], (40, 96),
                          pre_nms_topk=1, max_detections=1)
    assert c.loc_index.tolist() == [0]


def test_paste_masks_by_hand():
    logits = torch.full((1, 1, 2, 3), -10.0)
    logits[0, 0, 0, 0] = 10.0
    m = paste_masks(logits, 4, image_size=(7, 10))
    # bilinear x4 (align_corners=False) of the probabilities: output k samples input
    # (k + 0.5) / 4 - 0.5, so the weight of input pixel 0 along one axis is
    # f = [1, 1, 0.875, 0.625, 0.375, 0.125, 0, ...]; the other pixels are ~0, so
    # p(i, j) ~ f(i) f(j) > 0.5 for i, j < 4 except (3, 3): 0.625^2 = 0.39
    expect = torch.zeros(7, 10, dtype=torch.bool)
    expect[:4, :4] = True
    expect[3, 3] = False
    assert m.shape == (1, 7, 10) and m.dtype == torch.bool and torch.equal(m[0], expect)
    probs = paste_masks(logits, 4, (7, 10), output_size=(14, 20), threshold=None)
    assert probs.shape == (1, 14, 20) and probs.dtype == torch.float32
    assert probs[0, 0, 0] > 0.99 and probs[0, -1, -1] < 0.01
    assert paste_masks(logits[:0], 4, (7, 10)).shape == (0, 7, 10)


def test_scale_boxes():
    b = scale_boxes(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), (100, 200), (50, 400))
    assert b.tolist() == [[20.0, 10.0, 60.0, 20.0]]
