"""Contrastive embedding head and losses (Eq. 2 of the contrastive online VIS paper)."""
from __future__ import annotations

import math

import torch

from tubelet.models.embed_head import EmbedHead, auxiliary_cosine_loss, contrastive_loss


def slow_contrastive(anchors, positives, negatives):
    """Direct transcription of log(1 + sum_{k+} sum_{k-} exp(v.k- - v.k+)), mean over anchors."""
    losses = []
    for v, kp, kn in zip(anchors.tolist(), positives, negatives):
        if len(kp) == 0:
            continue
        total = 1.0
        for p in kp.tolist():
            for q in kn.tolist():
                total += math.exp(sum(a * b for a, b in zip(v, q)) - sum(a * b for a, b in zip(v, p)))
        losses.append(math.log(total))
    return sum(losses) / len(losses)


def test_embed_head_shapes():
    head = EmbedHead(in_channels=32, width=16, out_channels=8, num_layers=3)
    assert len(head.layers) == 3
    assert head(torch.randn(5, 32)).shape == (5, 8)
    assert head(torch.randn(2, 5, 32)).shape == (2, 5, 8)
    assert [tuple(l.weight.shape) for l in EmbedHead().layers] == [(256, 256)] * 3


def test_contrastive_by_hand():
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    pos = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.zeros(0, 2)]
    neg = [torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0], [2.0, 0.0]]),
           torch.tensor([[5.0, 5.0]])]
    # anchor 0: log(1 + e^(0-1)); anchor 1: log(1 + e^(0-1) + e^(2-1)); anchor 2: no positive
    expect = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-1) + math.exp(1))) / 2
    assert math.isclose(float(contrastive_loss(v, pos, neg)), expect, rel_tol=1e-6)


def test_contrastive_matches_slow_reference():
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(5, 4, generator=g)
    sizes = [(3, 4), (1, 0), (0, 3), (2, 7), (4, 1)]
    pos = [torch.randn(p, 4, generator=g) for p, _ in sizes]
    neg = [torch.randn(q, 4, generator=g) for _, q in sizes]
    assert math.isclose(float(contrastive_loss(anchors, pos, neg)),
                        slow_contrastive(anchors, pos, neg), rel_tol=1e-5)


def test_contrastive_is_stable_and_differentiable():
    v = torch.tensor([[30.0, 0.0]], requires_grad=True)
    loss = contrastive_loss(v, [torch.tensor([[-10.0, 0.0]])], [torch.tensor([[10.0, 0.0]])])
    # log(1 + e^(300 + 300)) ~ 600; the naive form overflows
    assert math.isclose(loss.item(), 600.0, rel_tol=1e-6)
    loss.backward()
    assert torch.isfinite(v.grad).all()
    empty = torch.ones(2, 3, requires_grad=True)
    zero = contrastive_loss(empty, [torch.zeros(0, 3)] * 2, [torch.ones(2, 3)] * 2)
    assert zero.item() == 0.0 and zero.requires_grad


def test_auxiliary_by_hand():
    v = torch.tensor([[1.0, 0.0]])
    pos = [torch.tensor([[3.0, 0.0]])]
    neg = [torch.tensor([[0.0, 1.0], [2.0, 0.0]])]
    # cos: 1 (label 1) -> 0; 0 (label 0) -> 0; 1 (label 0) -> 1; mean 1/3
    assert math.isclose(float(auxiliary_cosine_loss(v, pos, neg)), 1 / 3, rel_tol=1e-6)


def test_auxiliary_subsamples_negatives():
    v = torch.tensor([[1.0, 0.0]])
    pos = [torch.tensor([[1.0, 0.0]])]
    # 30 negatives identical to v: each contributes (1 - 0)^2 = 1; the positive contributes 0
    neg = [torch.tensor([[1.0, 0.0]]).repeat(30, 1)]
    # at most 10 negatives per positive are kept: mean = 10 / 11
    loss = auxiliary_cosine_loss(v, pos, neg, max_neg_per_pos=10,
                                 generator=torch.Generator().manual_seed(0))
    assert math.isclose(float(loss), 10 / 11, rel_tol=1e-6)
    assert math.isclose(float(auxiliary_cosine_loss(v, pos, neg, max_neg_per_pos=None)), 30 / 31,
                        rel_tol=1e-6)
