"""The Seq-Prop head's ``prior_mask`` option (the previous frame's mask as a decoder input), the
method's use of it in training and propagation, and loading a head grown by it
(``missing_ok`` / ``train.init_missing_ok``)."""
import numpy as np
import pytest
import torch

import tests.toy_methods  # noqa: F401  (registers the hidden test doubles)
from tests.toy_methods import write_toy_run
from tubelet.engine.checkpoint import load_state
from tubelet.engine.config import load_experiment
from tubelet.engine.trainer import train
from tubelet.errors import InputError
from tubelet.methods import build_method
from tubelet.models.seq_mask_rcnn import SeqPropConfig, SeqPropHead, soft_aggregate
from tubelet.video import ArrayVideo


def _inputs(k=2, h4=8, w4=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = SeqPropConfig.cpu()
    p2 = torch.randn(1, cfg.in_channels, h4, w4, generator=g)
    c3 = torch.randn(1, cfg.c3_channels, h4 // 2, w4 // 2, generator=g)
    c2 = torch.randn(1, cfg.c2_channels, h4, w4, generator=g)
    masks = (torch.rand(k, 4 * h4 - 3, 4 * w4 - 5, generator=g) > 0.6).float()
    return p2, c3, c2, masks


def _block_mean(m: torch.Tensor, full: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Slow reference: pad ``m`` [H, W] with zeros to ``full``, then the mean of each of the
    ``size`` equal blocks, one block at a time."""
    padded = torch.zeros(full)
    padded[:m.shape[0], :m.shape[1]] = m
    bh, bw = full[0] // size[0], full[1] // size[1]
    out = torch.zeros(size)
    for y in range(size[0]):
        for x in range(size[1]):
            out[y, x] = float(padded[y * bh:(y + 1) * bh, x * bw:(x + 1) * bw].sum()) / (bh * bw)
    return out


def test_zero_init_prior_leaves_the_head_unchanged():
    torch.manual_seed(0)
    plain = SeqPropHead.from_config(SeqPropConfig.cpu())
    grown = SeqPropHead.from_config(SeqPropConfig.cpu(prior_mask=True))
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("prior.") for k in missing)
    p2, c3, c2, masks = _inputs()
    with torch.no_grad():
        k, v = plain.encode_memory(p2, masks)
        want = plain(k[:, :, None], v[:, :, None], p2, c3, c2, out_size=masks.shape[-2:])
        got = grown(k[:, :, None], v[:, :, None], p2, c3, c2, out_size=masks.shape[-2:],
                    prior=masks)
        # once the prior convs are not zero, the prior changes the output
        grown.prior[2].bias.fill_(0.5)
        moved = grown(k[:, :, None], v[:, :, None], p2, c3, c2, out_size=masks.shape[-2:],
                      prior=masks)
    assert torch.equal(got, want)
    assert float((moved - want).abs().max()) > 1e-4
    # the plain head ignores a prior
    with torch.no_grad():
        again = plain(k[:, :, None], v[:, :, None], p2, c3, c2, out_size=masks.shape[-2:],
                      prior=masks)
    assert torch.equal(again, want)


def test_prior_embeddings_are_the_block_means_of_the_padded_mask():
    head = SeqPropHead.from_config(SeqPropConfig.cpu(prior_mask=True))
    with torch.no_grad():  # each conv: centre tap c + 1 on channel c -> (c + 1) x pooled mask
        for conv in head.prior:
            conv.weight.zero_()
            conv.weight[:, 0, 1, 1] = torch.arange(1, conv.out_channels + 1).float()
    _, _, _, masks = _inputs(k=3, h4=8, w4=12)  # [3, 29, 43] inside a 32 x 48 padded frame
    sizes = [(2, 3), (4, 6), (8, 12)]  # stride 16 (memory), 1/8, 1/4 of 32 x 48
    got = head._priors(masks, sizes, 3, (32, 48))
    for level, size in enumerate(sizes):
        assert got[level].shape == (3, head.prior[level].out_channels, *size)
        for k in range(3):
            ref = _block_mean(masks[k], (32, 48), size)
            for c in (0, 5):
                torch.testing.assert_close(got[level][k, c], (c + 1) * ref, rtol=0, atol=1e-6)


def test_prior_is_required_and_checked():
    head = SeqPropHead.from_config(SeqPropConfig.cpu(prior_mask=True))
    p2, c3, c2, masks = _inputs()
    k, v = head.encode_memory(p2, masks)
    with pytest.raises(ValueError, match="prior_mask=True: pass prior"):
        head(k[:, :, None], v[:, :, None], p2, c3, c2)
    with pytest.raises(ValueError, match="does not fit"):  # one object's prior for two
        head(k[:, :, None], v[:, :, None], p2, c3, c2, prior=masks[:1])
    with pytest.raises(ValueError, match="does not fit"):  # larger than the padded frame
        head(k[:, :, None], v[:, :, None], p2, c3, c2, prior=torch.zeros(2, 33, 40))


def _tiny(prior: bool):
    torch.manual_seed(0)
    cfg = load_experiment("configs/propose_reduce_tiny.yaml",
                          [f"model.seq_prop.prior_mask={str(prior).lower()}"])
    return build_method(cfg.method, cfg.model)


class _Spy:
    """Wraps the head's forward and records each call's prior and aggregated output."""

    def __init__(self, head):
        self.head, self.priors, self.outputs = head, [], []
        self.forward = head.forward
        head.forward = self

    def __call__(self, *args, prior=None, **kw):
        out = self.forward(*args, prior=prior, **kw)
        self.priors.append(prior.detach().clone())
        probs = out[0] if isinstance(out, tuple) else out
        self.outputs.append(soft_aggregate(probs.detach())[1:])
        return out


def test_propagation_feeds_the_previous_frames_aggregate_as_prior():
    model = _tiny(True).eval()
    with torch.no_grad():
        for conv in model.prop.prior:  # a prior that matters
            conv.weight.normal_(0, 0.5)
    spy = _Spy(model.prop)
    rng = np.random.default_rng(0)
    video = ArrayVideo(rng.integers(0, 255, (4, 64, 96, 3), dtype=np.uint8))
    feats = model._features(video, 0)
    h, w = feats.image_sizes[0]
    key = torch.zeros(2, h, w)
    key[0, :10, :12], key[1, 20:30, 30:44] = 1, 1
    from tubelet.methods.propose_reduce.inference import SequenceProposals
    props = SequenceProposals(len(video), model.cfg.model.num_classes)
    first = props.add(2, key=0)
    with torch.no_grad():
        model._propagate(video, props, first, 0, feats, key, range(1, 4), (64, 96))
    assert len(spy.priors) == 3
    assert torch.equal(spy.priors[0], key)  # the key-frame masks first
    for t in (1, 2):  # then the previous frame's aggregated probabilities
        torch.testing.assert_close(spy.priors[t], spy.outputs[t - 1], rtol=0, atol=0)


def test_training_gives_the_reference_mask_as_prior_and_trains_the_prior_convs():
    from tests.test_method_propose_reduce_model import _pair_batch
    model = _tiny(True).train()
    spy = _Spy(model.prop)
    batch = _pair_batch([0, 1], [1, 0])
    out = model(batch)
    out["loss_prop"].backward()
    assert len(spy.priors) == 1
    # the reference memory masks: the mask head's probabilities on the GT boxes (notes §1)
    h, w = batch["image_sizes"][0]
    assert spy.priors[0].shape == (2, h, w)
    assert float(spy.priors[0].min()) >= 0 and float(spy.priors[0].max()) <= 1
    for conv in model.prop.prior:
        assert float(conv.weight.grad.abs().sum()) > 0


def test_load_state_missing_ok_only_under_the_prefix(tmp_path):
    plain, grown = _tiny(False), _tiny(True)
    state = plain.state_dict()
    with pytest.raises(InputError, match="do not fit"):
        load_state(grown, state, "w.pt")
    load_state(grown, state, "w.pt", ("prop.prior.",))
    assert all(torch.equal(grown.state_dict()[k], v) for k, v in state.items())
    # the new convs keep their fresh (zero) init
    assert all(float(p.detach().abs().sum()) == 0 for p in grown.prop.prior.parameters())
    with pytest.raises(InputError, match="missing .*prop.fuse"):  # another missing tensor
        load_state(grown, {k: v for k, v in state.items() if not k.startswith("prop.fuse")},
                   "w.pt", ("prop.prior.",))
    with pytest.raises(InputError, match="unexpected"):
        load_state(plain, grown.state_dict(), "w.pt", ("prop.prior.",))


def test_init_missing_ok_fine_tunes_from_weights_without_the_new_module(tmp_path):
    y, gt = write_toy_run(tmp_path, "{dim: 4, samples: 8}",
                          "{lr: 0.01, batch_size: 2, max_iters: 2, warmup_iters: 0}")
    train(load_experiment(str(y), [f"data.train_json={gt}"]), tmp_path / "src", progress=False)
    ck = torch.load(tmp_path / "src" / "last.pt", weights_only=True)
    ck["model"] = {k: v for k, v in ck["model"].items() if not k.startswith("head.")}
    torch.save(ck, tmp_path / "partial.pt")
    init = f"train.init_weights={tmp_path / 'partial.pt'}"
    with pytest.raises(InputError, match="do not fit"):
        train(load_experiment(str(y), [f"data.train_json={gt}", init]), tmp_path / "a",
              progress=False)
    cfg = load_experiment(str(y), [f"data.train_json={gt}", init,
                                   "train.init_missing_ok=[head.]", "train.lr=1e-30"])
    assert cfg.train.init_missing_ok == ("head.",)
    train(cfg, tmp_path / "b", progress=False)
    got = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    for k, v in ck["model"].items():  # the loaded tensors (lr 1e-30: unmoved)
        torch.testing.assert_close(got[k], v, rtol=0, atol=1e-20)
