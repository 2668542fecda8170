"""FCOS target assignment against hand-made cases and a slow per-location reference."""
from __future__ import annotations

import math

import torch

from tubelet.models.condinst.targets import (centerness_target, fcos_targets, level_locations,
                                             level_size_ranges)


def _levels(sizes_strides, boundaries):
    """Concatenate locations of levels [(h, w, stride)] with their strides and ranges."""
    ranges = level_size_ranges(boundaries, len(sizes_strides))
    locs, strides, rng = [], [], []
    for (h, w, s), r in zip(sizes_strides, ranges):
        loc = level_locations(h, w, s)
        locs.append(loc)
        strides.append(torch.full((len(loc),), float(s)))
        rng.append(torch.tensor(r).expand(len(loc), 2))
    return torch.cat(locs), torch.cat(strides), torch.cat(rng)


def slow_assign(locations, strides, ranges, boxes, labels, radius):
    """One location and one box at a time, with Python floats."""
    out_lab, out_gt, out_reg = [], [], []
    for (x, y), s, (lo, hi) in zip(locations.tolist(), strides.tolist(), ranges.tolist()):
        best, best_area = -1, math.inf
        for g, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            l, t, r, b = x - x1, y - y1, x2 - x, y2 - y
            if radius is None:
                inside = min(l, t, r, b) > 0
            else:
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                sx1, sy1 = max(cx - radius * s, x1), max(cy - radius * s, y1)
                sx2, sy2 = min(cx + radius * s, x2), min(cy + radius * s, y2)
                inside = sx1 < x < sx2 and sy1 < y < sy2
            fits = lo <= max(l, t, r, b) <= hi
            area = (x2 - x1) * (y2 - y1)
            if inside and fits and area < best_area:  # strict <: ties keep the lower index
                best, best_area = g, area
        out_gt.append(best)
        out_lab.append(int(labels[best]) if best >= 0 else -1)
        if best >= 0:
            x1, y1, x2, y2 = boxes[best].tolist()
            out_reg.append([x - x1, y - y1, x2 - x, y2 - y])
        else:
            out_reg.append([0.0] * 4)
    return torch.tensor(out_lab), torch.tensor(out_gt), torch.tensor(out_reg)


def test_locations_are_pixel_centres():
    loc = level_locations(2, 3, 8)
    assert loc.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]


def test_size_ranges():
    assert level_size_ranges((64, 128, 256, 512), 5) == [
        (0, 64), (64, 128), (128, 256), (256, 512), (512, math.inf)]


def test_centre_sampling_by_hand():
    # one level, stride 8, 32x32 image: locations x, y in {4, 12, 20, 28}
    loc, st, rg = _levels([(4, 4, 8)], ())
    boxes, labels = torch.tensor([[0.0, 0.0, 32.0, 32.0]]), torch.tensor([3])
    t = fcos_targets(loc, st, rg, boxes, labels, center_radius=1.5)
    # centre (16, 16), radius 12 -> centre region (4, 28) open: x, y in {12, 20}
    pos = {tuple(p) for p in loc[t.labels >= 0].tolist()}
    assert pos == {(12, 12), (20, 12), (12, 20), (20, 20)}
    assert set(t.labels.tolist()) == {-1, 3}
    i = loc.tolist().index([12, 12])
    assert t.box_targets[i].tolist() == [12, 12, 20, 20]
    assert math.isclose(float(t.centerness[i]), 0.6, rel_tol=1e-6)  # sqrt(12/20 * 12/20)
    # without centre sampling every location strictly inside the box is positive
    t = fcos_targets(loc, st, rg, boxes, labels, center_radius=None)
    assert int(t.positive.sum()) == 16


def test_size_ranges_select_the_level_by_hand():
    # levels stride 8 (4x4) and 16 (2x2), ranges [0, 16] and [16, inf]
    loc, st, rg = _levels([(4, 4, 8), (2, 2, 16)], (16,))
    t = fcos_targets(loc, st, rg, torch.tensor([[0.0, 0.0, 32.0, 32.0]]), torch.tensor([0]))
    # stride 8: the centre locations reach max(l,t,r,b) = 20 > 16 -> negative
    assert not t.positive[:16].any()
    # stride 16: locations (8|24, 8|24), reach 24 in [16, inf]; radius 24 covers the whole box
    assert t.positive[16:].all()
    assert t.box_targets[16].tolist() == [8, 8, 24, 24]


def test_ambiguous_location_takes_smallest_box():
    loc, st, rg = _levels([(4, 4, 8)], ())
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 24.0, 24.0]])
    t = fcos_targets(loc, st, rg, boxes, torch.tensor([0, 1]), center_radius=None)
    where = {tuple(p): int(g) for p, g in zip(loc.tolist(), t.gt_index)}
    assert where[(4, 4)] == 0            # only in the large box
    assert where[(12, 12)] == 1          # in both: area 256 < 1024
    assert where[(20, 20)] == 1
    assert t.box_targets[loc.tolist().index([20, 20])].tolist() == [12, 12, 4, 4]


def test_no_boxes_all_background():
    loc, st, rg = _levels([(4, 4, 8)], ())
    t = fcos_targets(loc, st, rg, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert (t.labels == -1).all() and (t.gt_index == -1).all() and (t.centerness == 0).all()


def test_matches_slow_reference_on_random_boxes():
    g = torch.Generator().manual_seed(0)
    loc, st, rg = _levels([(12, 16, 8), (6, 8, 16), (3, 4, 32)], (24, 48))
    for radius in (1.5, None):
        for _ in range(5):
            m = 6
            xy = torch.rand(m, 2, generator=g) * torch.tensor([128.0, 96.0])
            wh = 4 + torch.rand(m, 2, generator=g) * 80
            boxes = torch.cat([xy, xy + wh], 1)
            boxes[1] = boxes[0]  # an exact duplicate: equal areas, the lower index wins
            labels = torch.randint(0, 5, (m,), generator=g)
            t = fcos_targets(loc, st, rg, boxes, labels, center_radius=radius)
            lab, gt, reg = slow_assign(loc, st, rg, boxes, labels, radius)
            assert torch.equal(t.labels, lab) and torch.equal(t.gt_index, gt)
            assert torch.allclose(t.box_targets, reg, atol=1e-4)
            assert int(t.positive.sum()) > 0


def test_centerness_target_by_hand():
    c = centerness_target(torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]]))
    assert torch.allclose(c, torch.tensor([math.sqrt(1 / 3 * 2 / 4), 1.0]))
