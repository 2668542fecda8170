"""Multi-scale deformable attention (Deformable DETR Eq. 3) against a slow by-hand reference."""
from __future__ import annotations

import math

import torch

from tubelet.models.deformable_detr.ms_deform_attn import MSDeformAttn, ms_deform_attn_core

SHAPES = [(3, 4), (2, 3)]  # 2 levels (H_l, W_l)


def bilinear_by_hand(plane, h, w, x, y):
    """Sample a [h][w] list-of-lists at normalised (x, y): align_corners=False (pixel i's centre at
    (i + 0.5) / size), zero outside the map, exactly as the original MSDeformAttn kernel."""
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    total = 0.0
    for xi, yi, wt in ((x0, y0, (1 - fx) * (1 - fy)), (x0 + 1, y0, fx * (1 - fy)),
                       (x0, y0 + 1, (1 - fx) * fy), (x0 + 1, y0 + 1, fx * fy)):
        if 0 <= xi < w and 0 <= yi < h:
            total += wt * plane[yi][xi]
    return total


def slow_core(value, shapes, loc, weights):
    """Python loops over batch, query, head, level, point and channel."""
    b_n, _, m_n, dh = value.shape
    _, lq, _, l_n, k_n, _ = loc.shape
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(b_n, lq, m_n * dh, dtype=torch.float64)
    for b in range(b_n):
        for q in range(lq):
            for m in range(m_n):
                for c in range(dh):
                    acc = 0.0
                    for lvl, (h, w) in enumerate(shapes):
                        flat = value[b, starts[lvl]:starts[lvl + 1], m, c].tolist()
                        plane = [flat[r * w:(r + 1) * w] for r in range(h)]
                        for k in range(k_n):
                            x, y = loc[b, q, m, lvl, k].tolist()
                            acc += float(weights[b, q, m, lvl, k]) * bilinear_by_hand(plane, h, w, x, y)
                    out[b, q, m * dh + c] = acc
    return out


def test_core_matches_by_hand_bilinear():
    g = torch.Generator().manual_seed(0)
    b, lq, m, dh, k = 2, 3, 2, 3, 2
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(b, s, m, dh, generator=g, dtype=torch.float64)
    # locations in [-0.3, 1.3]: some samples fall partly or wholly outside the maps (zero padding)
    loc = torch.rand(b, lq, m, len(SHAPES), k, 2, generator=g, dtype=torch.float64) * 1.6 - 0.3
    weights = torch.rand(b, lq, m, len(SHAPES), k, generator=g, dtype=torch.float64)
    fast = ms_deform_attn_core(value, SHAPES, loc, weights)
    assert fast.shape == (b, lq, m * dh)
    assert torch.allclose(fast, slow_core(value, SHAPES, loc, weights), atol=1e-10)


def test_core_hits_pixel_centres_exactly():
    # a location at pixel (row 1, col 2)'s centre, ((2 + .5) / 4, (1 + .5) / 3), returns that pixel
    value = torch.arange(12.0).reshape(1, 12, 1, 1)  # one 3x4 level, value = row-major index
    loc = torch.tensor([2.5 / 4, 1.5 / 3]).reshape(1, 1, 1, 1, 1, 2)
    out = ms_deform_attn_core(value, [(3, 4)], loc, torch.ones(1, 1, 1, 1, 1))
    assert out.item() == 6.0
    # on the left border x = 0 (pixel coordinate -0.5): half pixel (1, 0) = 4, half zero padding
    loc = torch.tensor([0.0, 1.5 / 3]).reshape(1, 1, 1, 1, 1, 2)
    out = ms_deform_attn_core(value, [(3, 4)], loc, torch.ones(1, 1, 1, 1, 1))
    assert math.isclose(out.item(), 0.5 * 4.0, rel_tol=1e-6)


def test_sampling_locations_by_hand():
    attn = MSDeformAttn(d_model=8, n_levels=2, n_heads=2, n_points=2)
    with torch.no_grad():
        attn.sampling_offsets.weight.zero_()
        attn.sampling_offsets.bias.fill_(1.0)  # every offset is (+1, +1)
    query = torch.zeros(1, 1, 8)
    ref2 = torch.tensor([[[[0.5, 0.25], [0.5, 0.25]]]])  # [B, Lq, L, 2]
    loc, w = attn.sampling(query, ref2, SHAPES)
    # 2-d references: offsets in pixels of each level -> +1/W_l, +1/H_l
    assert torch.allclose(loc[0, 0, 0, 0, 0], torch.tensor([0.5 + 1 / 4, 0.25 + 1 / 3]))
    assert torch.allclose(loc[0, 0, 1, 1, 1], torch.tensor([0.5 + 1 / 3, 0.25 + 1 / 2]))
    # zero attention logits -> uniform over a head's L * K = 4 samples
    assert torch.allclose(w, torch.full_like(w, 0.25))
    ref4 = torch.tensor([[[[0.5, 0.25, 0.2, 0.4]] * 2]])  # boxes: offset / K * (w, h) * 0.5
    loc, _ = attn.sampling(query, ref4, SHAPES)
    assert torch.allclose(loc[0, 0, 1, 0, 1], torch.tensor([0.5 + 0.5 * 0.2 * 0.5,
                                                            0.25 + 0.5 * 0.4 * 0.5]))


def test_initial_offsets_ring():
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=2)
    bias = attn.sampling_offsets.bias.view(4, 2, 2, 2)  # [M, L, K, 2]
    # heads at 0, 90, 180, 270 degrees, scaled to the unit square's border; point k at (k + 1)x
    dirs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    for m in range(4):
        for k in range(2):
            assert torch.allclose(bias[m, 1, k], dirs[m] * (k + 1), atol=1e-6)


def test_module_forward_matches_reference():
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=4, n_levels=2, n_heads=2, n_points=2).double()
    with torch.no_grad():  # non-trivial offsets and weights
        attn.sampling_offsets.weight.normal_(0, 0.5)
        attn.attention_weights.weight.normal_(0, 0.5)
    s = sum(h * w for h, w in SHAPES)
    query = torch.randn(1, 3, 4, dtype=torch.float64)
    value = torch.randn(1, s, 4, dtype=torch.float64)
    ref = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    out = attn(query, ref, value, SHAPES)
    loc, w = attn.sampling(query, ref, SHAPES)
    v = attn.value_proj(value).view(1, s, 2, 2)
    expect = attn.output_proj(slow_core(v.detach(), SHAPES, loc.detach(), w.detach()))
    assert torch.allclose(out, expect, atol=1e-10)
    # a padded position contributes nothing: zeroing its value equals masking it
    mask = torch.zeros(1, s, dtype=torch.bool)
    mask[0, 5] = True
    masked = attn(query, ref, value, SHAPES, padding_mask=mask)
    v0 = v.detach().clone()
    v0[0, 5] = 0
    assert torch.allclose(masked, attn.output_proj(slow_core(v0, SHAPES, loc.detach(), w.detach())),
                          atol=1e-10)


def test_pluggable_core():
    calls = []

    def spy(value, shapes, loc, weights):
        calls.append(tuple(value.shape))
        return ms_deform_attn_core(value, shapes, loc, weights)

    attn = MSDeformAttn(d_model=8, n_levels=2, n_heads=2, n_points=2, core=spy)
    s = sum(h * w for h, w in SHAPES)
    out = attn(torch.randn(2, 5, 8), torch.rand(2, 5, 2, 2), torch.randn(2, s, 8), SHAPES)
    assert out.shape == (2, 5, 8) and calls == [(2, s, 2, 4)]


def test_core_gradients():
    # analytic gradients w.r.t. values, locations and weights match finite differences
    g = torch.Generator().manual_seed(1)
    value = torch.randn(1, 18, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    # keep locations off pixel-centre lines, where bilinear sampling has kinks
    loc = (0.1 + 0.8 * torch.rand(1, 2, 2, 2, 2, 2, generator=g, dtype=torch.float64)).requires_grad_()
    weights = torch.rand(1, 2, 2, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, l, w: ms_deform_attn_core(v, SHAPES, l, w),
                                    (value, loc, weights), eps=1e-6, atol=1e-5)
