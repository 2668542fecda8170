"""IAI identification module: ID head, clip slots, ID targets on a hand-made FCOS assignment, the
ID loss, the ID label map (Eq. 1) and the ID bank (Eq. 2, checked pixel by pixel)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tubelet.models.iai import IDBank, IDHead, clip_id_slots, id_label_map, id_loss, id_targets


def test_id_head_shapes_and_prior():
    torch.manual_seed(0)
    head = IDHead(16, num_ids=5, prior_prob=0.01)
    feats = [torch.randn(2, 16, 8, 12), torch.randn(2, 16, 4, 6), torch.randn(2, 16, 1, 1)]
    out = head(feats)
    assert [tuple(o.shape) for o in out] == [(2, 5, 8, 12), (2, 5, 4, 6), (2, 5, 1, 1)]
    # bias b with sigmoid(b) = 0.01: b = -log(99)
    assert torch.allclose(head.logits.bias, torch.full((5,), -math.log(99.0)))
    # one conv + GN + ReLU, then the logits conv (the paper's "two convolution layers")
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == \
        [(16, 16, (3, 3)), (16, 5, (3, 3))]
    assert any(isinstance(m, torch.nn.GroupNorm) for m in head.modules())
    with pytest.raises(ValueError):
        IDHead(16, num_ids=1)


def test_clip_slots_in_order_of_first_appearance():
    # frame 0: identities 7 and 3 appear (tie -> by identity: 3 gets slot 0, 7 slot 1);
    # frame 1: 3, 9 (new: slot 2), 7; frame 2: nobody; frame 3: 9 only
    frames = [torch.tensor([7, 3]), torch.tensor([3, 9, 7]), torch.tensor([], dtype=torch.long),
              torch.tensor([9])]
    slots, first = clip_id_slots(frames, num_ids=20)
    assert [s.tolist() for s in slots] == [[1, 0], [0, 2, 1], [], [2]]
    assert [f.tolist() for f in first] == [[True, True], [False, True, False], [], [False]]


def test_clip_slots_overflow():
    # N = 3: slots 0 and 1 only; the third identity has none (-1) and is "first" only once
    slots, first = clip_id_slots([torch.tensor([5, 1]), torch.tensor([2, 5]), torch.tensor([2])], 3)
    assert [s.tolist() for s in slots] == [[1, 0], [-1, 1], [-1]]
    assert [f.tolist() for f in first] == [[True, True], [True, False], [False]]
    with pytest.raises(ValueError):
        clip_id_slots([torch.tensor([4, 4])], 5)


def test_clip_slots_follow_a_given_order():
    # order = the slot of the k-th object to appear: 3 (first, by identity) -> 4, 7 -> 0, 9 -> 2
    frames = [torch.tensor([7, 3]), torch.tensor([3, 9, 7]), torch.tensor([9])]
    slots, first = clip_id_slots(frames, num_ids=6, order=[4, 0, 2, 1, 3])
    assert [s.tolist() for s in slots] == [[0, 4], [4, 2, 0], [2]]
    assert [f.tolist() for f in first] == [[True, True], [False, True, False], [False]]
    # overflow with an order: N = 3 -> two slots, taken in the order given, the third gets none
    slots, _ = clip_id_slots([torch.tensor([5, 1]), torch.tensor([2, 5])], 3, order=[1, 0])
    assert [s.tolist() for s in slots] == [[0, 1], [-1, 0]]
    for bad in ([0, 1, 2, 3], [0, 0, 1, 2, 3], [1, 2, 3, 4, 5]):
        with pytest.raises(ValueError, match="permutation"):
            clip_id_slots(frames, num_ids=6, order=bad)


def test_model_slot_order_draws_every_slot():
    # "random" draws a permutation of 0..N-2 per clip from torch's RNG (seeded: reproducible);
    # over many clips the first object lands on every slot, unlike "appearance" (always 0)
    from tubelet.models.iai.model import IAICondInst
    model = IAICondInst.__new__(IAICondInst)
    model.num_ids, model.slot_order = 6, "random"
    torch.manual_seed(0)
    draws = [model._slot_order() for _ in range(200)]
    assert all(sorted(d) == list(range(5)) for d in draws)
    assert {d[0] for d in draws} == set(range(5))
    torch.manual_seed(0)
    assert [model._slot_order() for _ in range(200)] == draws
    model.slot_order = "appearance"
    assert model._slot_order() is None


def test_id_targets_hand_made_assignment():
    n = 4  # slots 0..2, "new" = 3
    slots, first = clip_id_slots([torch.tensor([7, 3]), torch.tensor([3, 9, 7])], n)
    # frame 1's FCOS assignment of 7 locations: background, object 0 (identity 3), object 1
    # (identity 9, first seen now) twice, background, object 2 (identity 7), object 0
    gt_index = torch.tensor([-1, 0, 1, 1, -1, 2, 0])
    got = id_targets(gt_index, slots[1], first[1], n)
    want = torch.tensor([[0, 0, 0, 0],
                         [1, 0, 0, 0],   # identity 3 -> slot 0
                         [0, 0, 0, 1],   # identity 9 -> "new"
                         [0, 0, 0, 1],
                         [0, 0, 0, 0],
                         [0, 1, 0, 0],   # identity 7 -> slot 1
                         [1, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(got, want)
    # frame 0: everything is new
    got0 = id_targets(torch.tensor([1, -1, 0]), slots[0], first[0], n)
    assert torch.equal(got0, torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1.0]]))
    # an object without a slot is "new" even after its first frame
    s, f = clip_id_slots([torch.tensor([5, 1]), torch.tensor([2, 5]), torch.tensor([2])], 3)
    assert torch.equal(id_targets(torch.tensor([0]), s[2], f[2], 3), torch.tensor([[0, 0, 1.0]]))
    # no positives: all zero
    assert torch.equal(id_targets(torch.full((3,), -1), slots[1], first[1], n), torch.zeros(3, n))


def test_id_loss_normalised_by_positives():
    # logits 0 -> p = 0.5 everywhere; focal term per element: a_t * 0.5^2 * log 2
    logits = torch.zeros(2, 5, 4)  # B=2, L=5, N=4
    targets = torch.zeros(2, 5, 4)
    targets[0, 1, 0] = 1
    targets[1, 3, 3] = 1
    targets[1, 4, 2] = 1  # 3 positive rows
    pos_term, neg_term = 0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)
    total = 3 * pos_term + (2 * 5 * 4 - 3) * neg_term
    assert id_loss(logits, targets).item() == pytest.approx(total / 3, rel=1e-6)
    # no positives: divided by 1
    assert id_loss(logits, torch.zeros_like(targets)).item() == \
        pytest.approx(40 * neg_term, rel=1e-6)


def test_id_label_map_paints_in_priority_order():
    masks = torch.zeros(4, 3, 4, dtype=torch.bool)
    masks[0, 0, 0:2] = True        # slot 2
    masks[1, 0, 1:4] = True        # slot 0, overlaps mask 0 at (0, 1): mask 0 keeps it
    masks[2, 2, :] = True          # slot -1: not written
    masks[3, 1, 0] = True          # slot 4 = N-1 ("new") with N = 5: not written
    labels = id_label_map(torch.tensor([2, 0, -1, 4]), masks, num_ids=5)
    want = torch.tensor([[2, 2, 0, 0], [5, 5, 5, 5], [5, 5, 5, 5]])
    assert torch.equal(labels, want)
    assert torch.equal(id_label_map(torch.zeros(0, dtype=torch.long),
                                    torch.zeros(0, 2, 2, dtype=torch.bool), 3),
                       torch.full((2, 2), 3))


def test_id_label_map_matches_painting_one_mask_at_a_time():
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(9, 12, 15, generator=g) > 0.7  # heavy overlaps
    slots = torch.tensor([3, -1, 0, 5, 1, 7, 2, 6, 4])  # N = 7: -1 and 6 ("new"), 7 not painted
    want = torch.full((12, 15), 7, dtype=torch.long)
    for s, m in zip(slots.tolist(), masks):
        if 0 <= s <= 5:
            want[m & (want == 7)] = s
    assert torch.equal(id_label_map(slots, masks, num_ids=7), want)


@pytest.mark.parametrize("stride,size", [(32, (40, 70)), (8, (20, 28)), (8, (16, 24))])
def test_id_bank_equals_per_patch_sum(stride, size):
    """E at each patch = bias + sum over the window's in-image pixels of D[:, Y(pixel), offset]."""
    torch.manual_seed(0)
    n, c = 3, 4
    bank = IDBank(num_ids=n, channels=c, stride=stride)
    h, w = size
    labels = torch.randint(0, n + 1, (2, h, w))
    out = bank(labels)
    ho, wo = -(-h // stride), -(-w // stride)
    assert out.shape == (2, c, ho, wo)
    weight, bias = bank.embed.weight.detach(), bank.embed.bias.detach()  # [C, N+1, k, k]
    k, pad = stride + 1, stride // 2
    assert weight.shape == (c, n + 1, k, k)
    want = torch.zeros(2, c, ho, wo)
    for b in range(2):
        for i in range(ho):
            for j in range(wo):
                acc = bias.clone()
                for dy in range(k):
                    y = i * stride - pad + dy
                    if not 0 <= y < h:
                        continue
                    for dx in range(k):
                        x = j * stride - pad + dx
                        if 0 <= x < w:
                            acc += weight[:, labels[b, y, x], dy, dx]
                want[b, :, i, j] = acc
    assert torch.allclose(out, want, atol=1e-5)
    # and the same as the conv on the one-hot mask (Y^T D with D the conv's kernel)
    onehot = F.one_hot(labels, n + 1).permute(0, 3, 1, 2).float()
    assert torch.allclose(out, bank.embed(onehot), atol=1e-5)
    # it trains the kernel as the conv would: the same gradients
    g = torch.randn_like(out)
    (gw, gb) = torch.autograd.grad((bank(labels) * g).sum(), [bank.embed.weight, bank.embed.bias])
    (cw, cb) = torch.autograd.grad((bank.embed(onehot) * g).sum(),
                                   [bank.embed.weight, bank.embed.bias])
    assert torch.allclose(gw, cw, atol=1e-5) and torch.allclose(gb, cb, atol=1e-5)


def test_id_bank_paper_geometry():
    bank = IDBank(num_ids=20, channels=256, stride=32)
    conv = bank.embed
    assert (conv.in_channels, conv.out_channels) == (21, 256)
    assert conv.kernel_size == (33, 33) and conv.stride == (32, 32) and conv.padding == (16, 16)
    assert bank(torch.full((1, 64, 96), 20)).shape == (1, 256, 2, 3)
