"""The dynamic mask head: parameter count, relative coordinates, and a per-instance reference."""
from __future__ import annotations

import torch

from tubelet.models.condinst.dynamic_mask import DynamicMaskHead


def test_paper_parameter_count():
    # (8 + 2) * 8 + 8  +  8 * 8 + 8  +  8 * 1 + 1
    assert DynamicMaskHead(8, 8, 3).num_params == 169
    assert DynamicMaskHead(8, 8, 3, rel_coords=False).num_params == 169 - 16
    assert DynamicMaskHead(4, 16, 2).num_params == (4 + 2) * 16 + 16 + 16 + 1


def test_relative_coords_by_hand():
    # one linear layer that passes dx (weights [1, 0, 0]) or dy ([0, 1, 0]) through: the output is
    # (pixel - location) / size_of_interest at pixel centres (j * 8 + 4, i * 8 + 4)
    head = DynamicMaskHead(1, 1, 1)
    feats = torch.zeros(1, 1, 2, 2)
    params = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])  # 3 weights, 1 bias
    locs = torch.tensor([[12.0, 4.0], [12.0, 4.0]])
    out = head(feats, 8, params, torch.tensor([0, 0]), locs, torch.tensor([8.0, 8.0]))
    assert out.shape == (2, 1, 2, 2)
    assert out[0, 0].flatten().tolist() == [-1, 0, -1, 0]  # dx = (x - 12) / 8
    assert out[1, 0].flatten().tolist() == [0, 0, 1, 1]    # dy = (y - 4) / 8


def slow_dynamic(feats, stride, params, img, locs, soi, c_in, ch, layers):
    """Per instance, per pixel, with the documented parameter layout (weights, then biases)."""
    b, c, h, w = feats.shape
    out = torch.zeros(params.shape[0], 1, h, w)
    ins = [c_in + 2] + [ch] * (layers - 1)
    outs = [ch] * (layers - 1) + [1]
    for n in range(params.shape[0]):
        p = params[n].tolist()
        ws, off = [], 0
        for i, o in zip(ins, outs):
            ws.append(torch.tensor(p[off:off + i * o]).reshape(o, i))
            off += i * o
        bs = []
        for o in outs:
            bs.append(torch.tensor(p[off:off + o]))
            off += o
        assert off == len(p)
        for yi in range(h):
            for xj in range(w):
                px, py = xj * stride + stride // 2, yi * stride + stride // 2
                x = torch.cat([torch.tensor([(px - float(locs[n, 0])) / float(soi[n]),
                                             (py - float(locs[n, 1])) / float(soi[n])]),
                               feats[img[n], :, yi, xj]])
                for k in range(layers):
                    x = ws[k] @ x + bs[k]
                    if k < layers - 1:
                        x = torch.relu(x)
                out[n, 0, yi, xj] = x[0]
    return out


def test_matches_per_instance_reference():
    g = torch.Generator().manual_seed(0)
    head = DynamicMaskHead(8, 8, 3)
    feats = torch.randn(2, 8, 3, 5, generator=g)
    params = torch.randn(4, 169, generator=g) * 0.5
    img = torch.tensor([0, 1, 1, 0])
    locs = torch.tensor([[4.0, 4.0], [20.0, 12.0], [36.0, 20.0], [12.0, 4.0]])
    soi = torch.tensor([64.0, 64.0, 128.0, 32.0])
    fast = head(feats, 8, params, img, locs, soi)
    slow = slow_dynamic(feats, 8, params, img, locs, soi, 8, 8, 3)
    assert fast.shape == (4, 1, 3, 5)
    assert torch.allclose(fast, slow, atol=1e-5)
    # each instance's mask depends only on its own parameters (the batched products keep them apart)
    params2 = params.clone()
    params2[1] += 1.0
    fast2 = head(feats, 8, params2, img, locs, soi)
    assert torch.equal(fast2[[0, 2, 3]], fast[[0, 2, 3]]) and not torch.equal(fast2[1], fast[1])


def test_one_image_path_matches_per_instance_reference():
    # B = 1 takes the single-GEMM path for layer 0; the reference is the same per-pixel loop
    g = torch.Generator().manual_seed(1)
    head = DynamicMaskHead(4, 16, 2)
    feats = torch.randn(1, 4, 4, 6, generator=g)
    params = torch.randn(3, head.num_params, generator=g) * 0.5
    img = torch.zeros(3, dtype=torch.long)
    locs = torch.tensor([[2.0, 2.0], [30.0, 10.0], [13.0, 7.0]])
    soi = torch.tensor([16.0, 32.0, 8.0])
    fast = head(feats, 4, params, img, locs, soi)
    slow = slow_dynamic(feats, 4, params, img, locs, soi, 4, 16, 2)
    assert torch.allclose(fast, slow, atol=1e-5)


def test_no_instances():
    out = DynamicMaskHead()(torch.randn(1, 8, 3, 5), 8, torch.zeros(0, 169),
                            torch.zeros(0, dtype=torch.long), torch.zeros(0, 2), torch.zeros(0))
    assert out.shape == (0, 1, 3, 5)
