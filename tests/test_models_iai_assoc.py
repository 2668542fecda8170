"""IAI association module: sine positions, the two memory attentions against explicit loops,
DropPath, the association block, the memory's write policy and cap, the classification projector."""
from __future__ import annotations

import math

import pytest
import torch

from tubelet.models.iai import attention

from tubelet.models.iai import (AssociationBlock, AssociationMemory, ClassificationProjector,
                                DropPath, local_window_attention, multihead_attention,
                                sine_positions)




def test_sine_positions_by_hand():
    pos = sine_positions(2, 3, 8)  # half = 4 channels per axis, frequencies 1, 1, 100, 100
    assert pos.shape == (6, 8)
    y = 1.5 / 2 * 2 * math.pi  # row 1
    x = 2.5 / 3 * 2 * math.pi  # column 2
    want = torch.tensor([math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100),
                         math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)])
    assert torch.allclose(pos[1 * 3 + 2], want, atol=1e-6)
    with pytest.raises(ValueError):
        sine_positions(2, 2, 6)


def _softmax_attend(q, ks, vs):
    """q [d], ks/vs [n, d] -> [d], the obvious way."""
    logits = torch.stack([(q * k).sum() for k in ks]) / math.sqrt(q.shape[0])
    weights = torch.exp(logits - logits.max())
    weights = weights / weights.sum()
    return sum(wt * v for wt, v in zip(weights, vs))


@pytest.mark.parametrize("path", ["dense", "unfold"])
@pytest.mark.parametrize("window", [1, 3, 15])
def test_local_window_attention_equals_loop(window, path, monkeypatch):
    torch.manual_seed(0)
    b, d, h, w, heads = 2, 8, 5, 6, 2
    # the dense masked path serves maps up to DENSE_LOCAL_MAX positions, unfold the rest
    monkeypatch.setattr(attention, "DENSE_LOCAL_MAX", h * w if path == "dense" else h * w - 1)
    q, k, v = torch.randn(b, d, h, w), torch.randn(b, d, h, w), torch.randn(b, d, h, w)
    got = local_window_attention(q, k, v, heads, window)
    dh, r = d // heads, window // 2
    want = torch.zeros(b, d, h, w)
    for bi in range(b):
        for hd in range(heads):
            ch = slice(hd * dh, (hd + 1) * dh)
            for i in range(h):
                for j in range(w):
                    nb = [(y, x) for y in range(i - r, i + r + 1) for x in range(j - r, j + r + 1)
                          if 0 <= y < h and 0 <= x < w]
                    ks = [k[bi, ch, y, x] for y, x in nb]
                    vs = [v[bi, ch, y, x] for y, x in nb]
                    want[bi, ch, i, j] = _softmax_attend(q[bi, ch, i, j], ks, vs)
    assert torch.allclose(got, want, atol=1e-5)
    if window == 1:  # only the same position: the output is v itself
        assert torch.allclose(got, v, atol=1e-6)


def test_local_window_attention_rejects_bad_input():
    x = torch.randn(1, 4, 3, 3)
    with pytest.raises(ValueError):
        local_window_attention(x, torch.randn(1, 4, 3, 4), x, 2)
    with pytest.raises(ValueError):
        local_window_attention(x, x, x, 2, window=4)


def test_multihead_attention_equals_loop_and_empty_memory():
    torch.manual_seed(1)
    b, lq, lk, d, heads = 2, 3, 5, 8, 2
    q, k, v = torch.randn(b, lq, d), torch.randn(b, lk, d), torch.randn(b, lk, d)
    got = multihead_attention(q, k, v, heads)
    dh = d // heads
    want = torch.zeros(b, lq, d)
    for bi in range(b):
        for hd in range(heads):
            ch = slice(hd * dh, (hd + 1) * dh)
            for i in range(lq):
                want[bi, i, ch] = _softmax_attend(q[bi, i, ch], k[bi, :, ch], v[bi, :, ch])
    assert torch.allclose(got, want, atol=1e-5)
    empty = torch.zeros(b, 0, d)
    assert torch.equal(multihead_attention(q, empty, empty, heads), torch.zeros(b, lq, d))


def test_drop_path():
    x = torch.ones(64, 3, 2)
    dp = DropPath(0.5)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    torch.manual_seed(0)
    y = dp(x)
    per_sample = y.flatten(1)
    # each sample is dropped (0) or kept and scaled by 1 / (1 - p) = 2, as a whole
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    assert 0 < int((per_sample[:, 0] == 0).sum()) < 64
    with pytest.raises(ValueError):
        DropPath(1.0)


def _block(**kw):
    args = dict(dim=16, self_heads=4, global_heads=2, local_heads=2, window=3, ffn_dim=32,
                dw_kernel=5, drop_path=0.1)
    args.update(kw)
    return AssociationBlock(**args)


def test_block_shapes_and_memory_values():
    torch.manual_seed(0)
    blk = _block().eval()
    x = torch.randn(2, 16, 4, 5)
    out = blk(x)  # first frame: no memory
    assert out.out.shape == (2, 16, 4, 5)
    assert out.normed.shape == (2, 20, 16) and out.keys.shape == (2, 20, 16)
    values = blk.memory_values(out.normed, torch.randn(2, 16, 4, 5))
    assert values.shape == (2, 20, 16)
    g = (torch.cat([out.keys] * 3, 1), torch.cat([values] * 3, 1))  # 3 stored frames
    out2 = blk(torch.randn(2, 16, 4, 5), global_kv=g, local_kv=(out.keys, values))
    assert out2.out.shape == (2, 16, 4, 5)
    with pytest.raises(ValueError):
        blk.memory_values(out.normed, torch.randn(2, 16, 2, 5))
    with pytest.raises(ValueError):
        blk(torch.randn(2, 16, 3, 5), local_kv=(out.keys, values))


def test_block_values_carry_the_id_embedding():
    # values = Linear_v(LN(x) + E): a different ID embedding gives different values, same keys
    torch.manual_seed(0)
    blk = _block().eval()
    out = blk(torch.randn(1, 16, 3, 3))
    e1, e2 = torch.zeros(1, 16, 3, 3), torch.ones(1, 16, 3, 3)
    v1, v2 = blk.memory_values(out.normed, e1), blk.memory_values(out.normed, e2)
    assert torch.allclose(v2 - v1, blk.to_value.weight.sum(1).expand(9, 16)[None], atol=1e-5)


def test_block_ablation_switches_and_locality():
    torch.manual_seed(0)
    x = torch.randn(1, 16, 8, 8)
    prev = torch.randn(1, 64, 16), torch.randn(1, 64, 16)
    glob = torch.randn(1, 128, 16), torch.randn(1, 128, 16)
    full = _block().eval()
    no_global = _block(use_global=False).eval()
    no_global.load_state_dict(full.state_dict())
    no_local = _block(use_local=False).eval()
    no_local.load_state_dict(full.state_dict())
    # a switched-off memory is ignored
    assert torch.allclose(no_global(x, glob, prev).out, no_global(x, None, prev).out)
    assert torch.allclose(no_local(x, glob, prev).out, no_local(x, glob, None).out)
    assert not torch.allclose(full(x, glob, prev).out, full(x, None, prev).out)
    # the block's short-term attention is local: a previous-frame value at (0, 0) reaches only
    # the query positions whose 3x3 window holds (0, 0) (seen at the attention's output
    # projection; the FFN's GroupNorm then mixes the whole map)
    seen = []
    no_global.local_out.register_forward_hook(lambda mod, inp, out: seen.append(out.detach()))
    lk, lv = prev
    lv2 = lv.clone()
    lv2[0, 0] += 10.0
    no_global(x, None, (lk, lv))
    no_global(x, None, (lk, lv2))
    changed = ((seen[0] - seen[1]).abs().amax(2)[0] > 1e-6).reshape(8, 8)
    want = torch.zeros(8, 8, dtype=torch.bool)
    want[:2, :2] = True
    assert torch.equal(changed, want)


def test_memory_write_policy():
    def kv(val):
        return torch.full((1, 2, 4), float(val)), torch.full((1, 2, 4), -float(val))

    def present(*slots):
        p = torch.zeros(1, 5, dtype=torch.bool)
        p[0, list(slots)] = True
        return p

    mem = AssociationMemory(every=3, cap=None)
    assert mem.global_kv() is None and mem.local_kv() is None
    stored = [mem.write(f, *kv(f), present(0)) for f in range(7)]
    # frame 0 always, then every 3 frames since the last global entry
    assert stored == [True, False, False, True, False, False, True]
    assert mem.global_frames == [0, 3, 6]
    assert torch.equal(mem.local_kv()[0], kv(6)[0])  # local = the last write
    # a new instance (slot 2) stores frame 7 at once; an old one (slot 0 again) does not
    assert mem.write(7, *kv(7), present(0, 2))
    assert not mem.write(8, *kv(8), present(2))
    assert mem.global_frames == [0, 3, 6, 7]
    keys, values = mem.global_kv()
    assert keys.shape == (1, 8, 4) and values.shape == (1, 8, 4)
    assert keys[0, :, 0].tolist() == [0, 0, 3, 3, 6, 6, 7, 7]


@pytest.mark.parametrize("cap", [1, 2, 4])
def test_memory_cap_keeps_first_and_most_recent(cap):
    mem = AssociationMemory(every=1, cap=cap)
    for f in range(20):
        mem.write(f, torch.full((1, 3, 2), float(f)), torch.zeros(1, 3, 2),
                  torch.zeros(1, 4, dtype=torch.bool))
        assert len(mem) <= cap
    want = [0] + list(range(20 - (cap - 1), 20)) if cap > 1 else [0]
    assert mem.global_frames == want
    assert [int(k[0, 0, 0]) for k in mem.global_keys] == want
    assert mem.global_kv()[0].shape == (1, 3 * cap, 2)
    with pytest.raises(ValueError):
        AssociationMemory(cap=0)


def test_memory_without_cap_grows():
    mem = AssociationMemory(every=1, cap=None)
    for f in range(30):
        mem.write(f, torch.zeros(1, 1, 2), torch.zeros(1, 1, 2),
                  torch.zeros(1, 2, dtype=torch.bool))
    assert len(mem) == 30


def test_classification_projector_wiring():
    torch.manual_seed(0)
    proj = ClassificationProjector(c5_channels=40, dim=12)
    c5 = torch.randn(2, 40, 3, 4)
    x = proj.block_input(c5)
    assert x.shape == (2, 12, 3, 4)
    y = torch.randn(2, 12, 3, 4)
    out = proj(c5, x, y)
    assert out.shape == (2, 40, 3, 4)  # C5's channel count, so the FPN is unchanged
    assert torch.equal(out[:, :12], x) and torch.equal(out[:, 12:24], y)
    assert torch.allclose(out[:, 24:], proj.rest(c5))
    assert proj.rest.out_channels == 16  # 40 - 2 x 12
    # ResNet-50 geometry: 2048 = 256 + 256 + 1536
    assert ClassificationProjector(2048, 256).rest.out_channels == 1536
    exact = ClassificationProjector(24, 12)  # nothing left for the 1x1 conv
    assert exact.rest is None and exact(torch.randn(1, 24, 2, 2), torch.zeros(1, 12, 2, 2),
                                        torch.ones(1, 12, 2, 2)).shape == (1, 24, 2, 2)
    with pytest.raises(ValueError):
        ClassificationProjector(20, 12)
    off = ClassificationProjector(40, 12, enabled=False)
    assert off(c5, x, y).shape == (2, 40, 3, 4)
    assert torch.allclose(off(c5, x, y), off(torch.zeros_like(c5), x * 0, y))  # block output only


def test_projector_top_level_of_the_stride16_variant():
    torch.manual_seed(0)
    proj = ClassificationProjector(c5_channels=24, dim=12, top_channels=40)  # C4 24, C5 40
    c4, c5 = torch.randn(2, 24, 5, 7), torch.randn(2, 40, 3, 4)  # odd sizes: ceil(5/2), ceil(7/2)
    y = torch.randn(2, 12, 5, 7)
    top = proj.top(c5, y)
    assert top.shape == (2, 40, 3, 4)  # C5's channel count: the FPN is unchanged
    # the pooled block output by hand: each C5 cell takes the max of its 2x2 C4 cells
    for i in range(3):
        for j in range(4):
            cells = y[:, :, 2 * i: 2 * i + 2, 2 * j: 2 * j + 2].flatten(2)
            assert torch.equal(top[:, :12, i, j], cells.max(dim=2).values)
    assert torch.allclose(top[:, 12:], proj.top_rest(c5))
    assert proj(c4, proj.block_input(c4), y).shape == (2, 24, 5, 7)  # C4's own concatenation
    with pytest.raises(ValueError):
        proj.top(torch.randn(2, 40, 2, 4), y)  # C5 of the wrong size
    with pytest.raises(ValueError):
        ClassificationProjector(24, 12).top(c5, y)  # built without a top level
    with pytest.raises(ValueError):
        ClassificationProjector(24, 12, top_channels=12)  # nothing left for C5's own features
