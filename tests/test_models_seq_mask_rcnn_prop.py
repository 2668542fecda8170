"""Seq-Prop head pieces: memory read vs loops, soft aggregation and soft IoU by hand, the
bounded memory's policy, head shapes for both presets."""
import math

import pytest
import torch

from tubelet.models.seq_mask_rcnn import (PropagationMemory, SeqPropConfig, SeqPropHead,
                                          memory_read, soft_aggregate, soft_aggregate_ce_loss,
                                          soft_aggregate_log_probs, soft_aggregate_logits,
                                          soft_iou_loss)




# ------------------------------------------------------------------ memory read
def ref_memory_read(mk, mv, qk):
    """Explicit softmax-weighted sum, one object and one query position at a time."""
    num, d_k, t, h, w = mk.shape
    d_v = mv.shape[1]
    out = torch.zeros(num, d_v, h, w, dtype=mk.dtype)
    for k in range(num):
        q_all = qk[k] if qk.shape[0] == num else qk[0]
        for qy in range(h):
            for qx in range(w):
                logits, vals = [], []
                for tt in range(t):
                    for my in range(h):
                        for mx in range(w):
                            dot = sum(float(mk[k, c, tt, my, mx]) * float(q_all[c, qy, qx])
                                      for c in range(d_k))
                            logits.append(dot / math.sqrt(d_k))
                            vals.append(mv[k, :, tt, my, mx])
                top = max(logits)
                weights = [math.exp(x - top) for x in logits]
                total = sum(weights)
                acc = torch.zeros(d_v, dtype=mk.dtype)
                for wgt, v in zip(weights, vals):
                    acc = acc + (wgt / total) * v
                out[k, :, qy, qx] = acc
    return out


@pytest.mark.parametrize("shared_query", [True, False])
def test_memory_read_matches_explicit_softmax_sum(shared_query):
    g = torch.Generator().manual_seed(0)
    num, d_k, d_v, t, h, w = 2, 3, 4, 2, 2, 3
    mk = torch.randn(num, d_k, t, h, w, generator=g, dtype=torch.float64)
    mv = torch.randn(num, d_v, t, h, w, generator=g, dtype=torch.float64)
    qk = torch.randn(1 if shared_query else num, d_k, h, w, generator=g, dtype=torch.float64)
    got = memory_read(mk, mv, qk)
    assert got.shape == (num, d_v, h, w)
    torch.testing.assert_close(got, ref_memory_read(mk, mv, qk), rtol=1e-10, atol=1e-10)


def test_memory_read_single_position_copies_the_value():
    # one memory position: the softmax weight is 1 whatever the keys
    mk = torch.randn(1, 4, 1, 1, 1)
    mv = torch.tensor([1.0, -2.0, 3.0]).reshape(1, 3, 1, 1, 1)
    got = memory_read(mk, mv, torch.randn(1, 4, 1, 1))
    torch.testing.assert_close(got.flatten(), torch.tensor([1.0, -2.0, 3.0]))


# ------------------------------------------------------------------ soft aggregation
def test_soft_aggregate_two_objects_two_pixels_by_hand():
    # pixel A: p = (0.5, 0.5); pixel B: p = (0.8, 0.0)
    probs = torch.tensor([[0.5, 0.8], [0.5, 0.0]], dtype=torch.float64)  # [K=2, 2 pixels]
    got = soft_aggregate(probs)
    assert got.shape == (3, 2)
    # A: bg = 0.25 -> odds 1/3; objects odds 1, 1; total 7/3 -> (1/7, 3/7, 3/7)
    torch.testing.assert_close(got[:, 0], torch.tensor([1 / 7, 3 / 7, 3 / 7], dtype=torch.float64))
    # B: bg = 0.2 * 1.0 -> odds 1/4; object 1 odds 4; object 2 clamped to 1e-7 -> odds e
    e = 1e-7 / (1 - 1e-7)
    total = 0.25 + 4 + e
    torch.testing.assert_close(got[:, 1], torch.tensor([0.25 / total, 4 / total, e / total],
                                                       dtype=torch.float64))
    # the logits themselves: log(p / (1 - p)) of (bg, objects)
    lg = soft_aggregate_logits(probs)
    torch.testing.assert_close(lg[:, 0], torch.tensor([math.log(1 / 3), 0.0, 0.0],
                                                      dtype=torch.float64))


def test_soft_aggregate_clamps_certain_pixels():
    got = soft_aggregate(torch.tensor([[1.0], [0.0]]))  # object 1 certain: bg = 0
    assert torch.isfinite(got).all()
    assert got[1, 0] > 1 - 1e-6 and got.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------ aggregation in log space
def ref_aggregate(z):
    """Eq. 1 from object logits with Python floats, one pixel at a time: odds of the background
    prod(1 - p_k) and of each object p_k, normalised."""
    out = []
    for pix in z.T.tolist():
        p = [1 / (1 + math.exp(-v)) for v in pix]
        bg = math.prod(1 - q for q in p)
        odds = [bg / (1 - bg)] + [q / (1 - q) for q in p]
        out.append([o / sum(odds) for o in odds])
    return torch.tensor(out, dtype=torch.float64).T  # [K + 1, pixels]


def test_soft_aggregate_log_probs_matches_formula_inside_the_clamp():
    torch.manual_seed(0)
    z = torch.randn(3, 50, dtype=torch.float64) * 3  # probabilities well inside [1e-7, 1-1e-7]
    got = soft_aggregate_log_probs(z).exp()
    torch.testing.assert_close(got, ref_aggregate(z))
    # the same distribution as the (clamped) probability path there
    torch.testing.assert_close(got, soft_aggregate(torch.sigmoid(z)))


def test_soft_aggregate_log_probs_keeps_a_gradient_when_saturated():
    # one object, certain background (p = sigmoid(-40) ~ 4e-18, below the 1e-7 clamp), target
    # is the object: the clamped path gives no gradient, the log-space CE a full one
    z = torch.full((1, 1, 2), -40.0, requires_grad=True)
    target = torch.ones(1, 1, 2)
    soft_iou_loss(soft_aggregate(torch.sigmoid(z))[1:], target).backward()
    assert float(z.grad.abs().sum()) == 0
    z.grad = None
    loss = soft_aggregate_ce_loss(z, target)
    loss.backward()
    # background logit log(b / (1 - b)) ~ 40, limited to 30: log q_object = -40 - logsumexp(30,
    # -40) ~ -70; d loss / d z = -(1 - q_object) / 2 pixels = -0.5 (the clamped bg passes none)
    assert float(loss.detach()) == pytest.approx(70.0, abs=1e-3)
    torch.testing.assert_close(z.grad, torch.full((1, 1, 2), -0.5))


def test_soft_aggregate_ce_loss_by_hand():
    # pixel A: z = (0, 0): p = (1/2, 1/2), bg 1/4 -> odds (1/3, 1, 1): q = (1/7, 3/7, 3/7)
    # pixel B: z = (log 4, -inf-ish): p = (0.8, ~0): bg 0.2 -> odds (1/4, 4, ~0)
    z = torch.tensor([[[0.0, math.log(4)]], [[0.0, -60.0]]], dtype=torch.float64)  # [2, 1, 2]
    # targets: A covered by both objects -> the last (object 2); B by none -> background
    target = torch.tensor([[[1, 0]], [[1, 0]]])
    want = (-math.log(3 / 7) - math.log(0.25 / 4.25)) / 2
    got = soft_aggregate_ce_loss(z, target)
    assert float(got) == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError):
        soft_aggregate_ce_loss(z, target[:, :, :1])


def test_head_logits_are_the_probabilities_logit():
    torch.manual_seed(0)
    cfg = SeqPropConfig.cpu()
    head = SeqPropHead.from_config(cfg)
    p2 = torch.randn(1, cfg.in_channels, 8, 10)
    c2, c3 = torch.randn(1, cfg.c2_channels, 8, 10), torch.randn(1, cfg.c3_channels, 4, 5)
    keys, values = head.encode_memory(p2, (torch.rand(2, 30, 37) > 0.5).float())
    probs, logits = head(keys[:, :, None], values[:, :, None], p2, c3, c2, out_size=(30, 37),
                         return_logits=True)
    assert probs.shape == logits.shape == (2, 30, 37)
    torch.testing.assert_close(torch.sigmoid(logits), probs)
    torch.testing.assert_close(head(keys[:, :, None], values[:, :, None], p2, c3, c2,
                                    out_size=(30, 37)), probs)


# ------------------------------------------------------------------ soft IoU loss
def test_soft_iou_loss_by_hand():
    pred = torch.tensor([[0.5, 1.0, 0.0, 0.2], [0.0, 0.5, 0.5, 0.0], [0.3, 0.0, 0.0, 0.0]],
                        dtype=torch.float64).reshape(3, 2, 2)
    target = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]).reshape(3, 2, 2).bool()
    # object 1: min 1.5, max 2.2 -> 7/22; object 2: min 0.5, max 1.5 -> 2/3; object 3 empty
    got = soft_iou_loss(pred, target, eps=0.0)
    assert got.item() == pytest.approx((7 / 22 + 2 / 3) / 2, abs=1e-12)
    # with the empty object kept: its loss is 1 - 0 / 0.3 = 1
    got_all = soft_iou_loss(pred, target, eps=0.0, skip_empty=False)
    assert got_all.item() == pytest.approx((7 / 22 + 2 / 3 + 1) / 3, abs=1e-12)
    # eps enters the denominator of each object
    assert soft_iou_loss(pred[:1], target[:1], eps=0.1).item() == pytest.approx(1 - 1.5 / 2.3)


def test_soft_iou_loss_all_empty_is_zero_with_graph():
    pred = torch.rand(2, 3, 3, requires_grad=True)
    loss = soft_iou_loss(pred, torch.zeros(2, 3, 3))
    loss.backward()
    assert loss.item() == 0.0 and pred.grad is not None


# ------------------------------------------------------------------ bounded memory
def _slot(frame, k=2):
    return torch.full((k, 3, 2, 2), float(frame)), torch.full((k, 5, 2, 2), float(-frame))


def test_memory_write_rule_forward_and_backward():
    mem = PropagationMemory(cap=None, mem_step=5)
    mem.add_key_frame(10, *_slot(10))
    assert [t for t in range(10, 30) if mem.should_write(t)] == [15, 20, 25]
    assert [t for t in range(10, -1, -1) if mem.should_write(t)] == [5, 0]
    every = PropagationMemory(cap=None, mem_step=1)
    every.add_key_frame(3, *_slot(3))
    assert [t for t in range(0, 7) if every.should_write(t)] == [0, 1, 2, 4, 5, 6]


def test_memory_cap_keeps_key_frame_and_most_recent_writes():
    mem = PropagationMemory(cap=4, mem_step=2)
    mem.add_key_frame(10, *_slot(10))
    for t in range(11, 21):
        if mem.should_write(t):
            mem.write(t, *_slot(t))
    # written 12, 14, 16, 18, 20; room for 3 beside the key frame -> the 3 latest
    assert mem.frames == [10, 16, 18, 20] and len(mem) == 4
    keys, values = mem.keys, mem.values
    assert keys.shape == (2, 3, 4, 2, 2) and values.shape == (2, 5, 4, 2, 2)
    assert keys[0, 0, :, 0, 0].tolist() == [10, 16, 18, 20]
    assert values[1, 4, :, 1, 1].tolist() == [-10, -16, -18, -20]


def test_memory_unbounded_and_several_key_frames():
    mem = PropagationMemory(cap=None, mem_step=1)
    mem.add_key_frame(0, *_slot(0))
    for t in range(1, 30):
        mem.write(t, *_slot(t))
    assert len(mem) == 30
    two = PropagationMemory(cap=3, mem_step=1)
    two.add_key_frame(0, *_slot(0))
    two.add_key_frame(9, *_slot(9))
    for t in (10, 11, 12):
        two.write(t, *_slot(t))
    assert two.frames == [0, 9, 12]  # both key frames survive
    with pytest.raises(ValueError):
        two.add_key_frame(20, *_slot(20))  # 3 key frames leave no room under cap 3
    two.reset()
    assert len(two) == 0


def test_memory_bad_use():
    with pytest.raises(ValueError):
        PropagationMemory(cap=1)
    with pytest.raises(ValueError):
        PropagationMemory(mem_step=0)
    mem = PropagationMemory()
    with pytest.raises(RuntimeError):
        mem.should_write(3)
    mem.add_key_frame(0, *_slot(0, k=2))
    with pytest.raises(ValueError):
        mem.write(5, *_slot(5, k=3))  # a different object count


# ------------------------------------------------------------------ head shapes
@pytest.mark.parametrize("preset", ["paper", "cpu"])
def test_seq_prop_head_shapes(preset):
    torch.manual_seed(0)
    cfg = getattr(SeqPropConfig, preset)()
    head = SeqPropHead.from_config(cfg)
    p2 = torch.randn(1, cfg.in_channels, 8, 10)   # a 32 x 40 padded frame
    c2 = torch.randn(1, cfg.c2_channels, 8, 10)
    c3 = torch.randn(1, cfg.c3_channels, 4, 5)
    masks = (torch.rand(3, 30, 37) > 0.5).float()  # valid frame 30 x 37 inside the padding
    keys, values = head.encode_memory(p2, masks)
    assert keys.shape == (3, cfg.key_channels, 2, 3)
    assert values.shape == (3, cfg.value_channels, 2, 3)
    q_keys, q_values = head.encode_query(p2)
    assert q_keys.shape == (1, cfg.key_channels, 2, 3)
    probs = head(keys[:, :, None], values[:, :, None], p2, c3, c2)
    assert probs.shape == (3, 32, 40)
    assert ((probs >= 0) & (probs <= 1)).all()
    cropped = head(torch.stack([keys, keys], 2), torch.stack([values, values], 2), p2, c3, c2,
                   out_size=(30, 37))
    assert cropped.shape == (3, 30, 37)
    # objects are independent batch elements sharing the query: object 0 alone gives the same
    alone = head(keys[:1, :, None], values[:1, :, None], p2, c3, c2)
    torch.testing.assert_close(alone[0], probs[0], rtol=1e-4, atol=1e-5)


def test_seq_prop_trains_through_aggregation_and_loss():
    torch.manual_seed(0)
    cfg = SeqPropConfig.cpu()
    head = SeqPropHead.from_config(cfg)
    p2 = torch.randn(1, cfg.in_channels, 8, 8)
    masks = torch.zeros(2, 32, 32)
    masks[0, :16], masks[1, 16:] = 1, 1
    keys, values = head.encode_memory(p2, masks)
    probs = head(keys[:, :, None], values[:, :, None], p2, torch.randn(1, cfg.c3_channels, 4, 4),
                 torch.randn(1, cfg.c2_channels, 8, 8))
    agg = soft_aggregate(probs)
    assert agg.shape == (3, 32, 32)
    torch.testing.assert_close(agg.sum(0), torch.ones(32, 32))
    loss = soft_iou_loss(agg[1:], masks.bool())
    loss.backward()
    assert torch.isfinite(loss) and head.mask_embed.weight.grad is not None
    assert head.query_encoder.key.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("siamese", [True, False])
def test_siamese_init_starts_the_memory_encoder_as_the_query_encoder(siamese):
    torch.manual_seed(0)
    head = SeqPropHead.from_config(SeqPropConfig.cpu(siamese_init=siamese))
    mem = dict(head.memory_encoder.named_parameters())
    same = all(torch.equal(p, mem[n]) for n, p in head.query_encoder.named_parameters())
    assert same == siamese
    # so, with the option, a memory frame whose mask embedding adds nothing (weights and bias
    # zeroed here) has exactly the query keys / values of the same P2
    with torch.no_grad():
        head.mask_embed.weight.zero_()
        head.mask_embed.bias.zero_()
    p2 = torch.randn(1, 64, 8, 12)
    (mk, mv), (qk, qv) = head.encode_memory(p2, torch.ones(1, 32, 48)), head.encode_query(p2)
    assert torch.equal(mk, qk) == siamese and torch.equal(mv, qv) == siamese


def test_memory_stride_8_option_same_parameters_four_times_the_positions():
    torch.manual_seed(0)
    s16 = SeqPropHead.from_config(SeqPropConfig.cpu())
    s8 = SeqPropHead.from_config(SeqPropConfig.cpu(mem_stride=8))
    shapes16 = {n: p.shape for n, p in s16.state_dict().items()}
    assert shapes16 == {n: p.shape for n, p in s8.state_dict().items()}  # weights interchange
    s8.load_state_dict(s16.state_dict())
    p2, c3, c2 = torch.randn(1, 64, 12, 20), torch.randn(1, 32, 6, 10), torch.randn(1, 24, 12, 20)
    with torch.no_grad():
        k16, v16 = s16.encode_memory(p2, torch.ones(2, 48, 80))
        k8, v8 = s8.encode_memory(p2, torch.ones(2, 48, 80))
        probs = s8(k8[:, :, None], v8[:, :, None], p2, c3, c2, out_size=(45, 77))
    assert k16.shape == (2, 32, 3, 5) and v16.shape == (2, 64, 3, 5)  # 48x80 / 16
    assert k8.shape == (2, 32, 6, 10) and v8.shape == (2, 64, 6, 10)  # 48x80 / 8
    assert probs.shape == (2, 45, 77) and bool(((probs >= 0) & (probs <= 1)).all())
    with pytest.raises(ValueError, match="8 or 16"):
        SeqPropHead.from_config(SeqPropConfig.cpu(mem_stride=4))
