"""How fast does propose-reduce's Seq-Prop head learn? Train the head alone on a frozen detector.

    python bench/seq_prop_probe.py [--weights src/tubelet/weights/propose_reduce_synth.pt]
        [--steps 200] [--eval-every 100] [--lr 3e-4] [--optimizer adamw|sgd] [--keep-head]
        (--keep-head --steps 0: only evaluate the trained head)
        [--save OUT.pt]      the weights file with the probe's head in place of the file's
        [key=value ...]      e.g. model.seq_prop.mem_stride=8 model.prop_memory=gt
                             model.seq_prop.prior_mask=true (with --keep-head: the file's head
                             plus the option's new zero-initialised convs)

The detector (backbone, FPN, RoI heads) of a trained propose-reduce file is frozen and the Seq-Prop
head re-initialised (``--keep-head``: fine-tune the trained one) from the config after the
overrides; the head alone trains on the bench train split's (reference, current) pairs -- the
method's own ``prop_losses`` (soft IoU, plus the cross-entropy with ``model.prop_ce_weight``),
batches of 2 clips, gradient clipping 1 (35 with SGD, the paper's). Every ``--eval-every`` steps
the head propagates ground-truth reference masks to the next frame (gap 1-2) on 20 fixed pairs of
the train and of the valid split (with ``prior_mask`` the reference mask is also the prior); the
report gives the mean IoU of the aggregated masks (> 0.5)
with the ground truth, by object size (sqrt of the area in the current frame, pixels), the
do-nothing baseline (the reference mask copied) and the predicted / true foreground area ratio
(0 = collapsed to background). A minutes-long probe of a head setting before an hour of
training; one seed, 20 pairs: differences under ~0.05 are noise. Prints one JSON line per
evaluation, then one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from tubelet.data.clips import ClipConfig, ClipDataset, collate_clips  # noqa: E402
from tubelet.data.transforms import ClipAugConfig  # noqa: E402
from tubelet.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from tubelet.engine.config import experiment_to_dict  # noqa: E402
from tubelet.models.seq_mask_rcnn import soft_aggregate  # noqa: E402
from tubelet.ops.mask_iou import mask_iou_dense  # noqa: E402
from tubelet.utils.fileio import check_output_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from propagation_accuracy import SIZES, load_propose_reduce, size_bucket  # noqa: E402


def pair_ious(model, ds: ClipDataset, pairs: int) -> dict:
    """Propagate GT reference masks one step on ``pairs`` fixed clips -> mean IoU by size."""
    got, copy, fg = defaultdict(list), defaultdict(list), []
    for i in range(pairs):
        b = collate_clips([ds[(i * 7) % len(ds)]])
        ref, cur = b["targets"][0]
        h, w = b["image_sizes"][0]
        ids_r, ids_c = ref["ids"].tolist(), cur["ids"].tolist()
        objs = [j for j, o in enumerate(ids_r) if o in ids_c][: model.cfg.max_objects]
        if not objs:
            continue
        with torch.no_grad():
            feats = model.rcnn.extract(model.normalize(b["images"][0]), [(h, w)] * 2)
            fr, fc = feats.frames(0), feats.frames(1)
            truth = torch.stack([cur["masks"][ids_c.index(ids_r[j])][:h, :w] for j in objs])
            mem = ref["masks"][objs][:, :h, :w]  # [M, h, w] bool
            k, v = model.prop.encode_memory(fr.p2, mem.float())
            p = model.prop(k[:, :, None], v[:, :, None], fc.p2, fc.c3, fc.c2, out_size=(h, w),
                           prior=mem.float())
            pred = soft_aggregate(p)[1:] > 0.5  # [M, h, w]
        fg.append(float(pred.float().sum() / truth.float().sum().clamp(min=1)))
        for store, guess in ((got, pred), (copy, mem)):
            for m, v in enumerate(mask_iou_dense(guess, truth).diagonal().tolist()):
                store[size_bucket(float(truth[m].sum()))].append(v)

    def mean(xs):
        return round(sum(xs) / len(xs), 4) if xs else None
    every = [x for xs in got.values() for x in xs]
    return {"iou": mean(every), "copy": mean([x for xs in copy.values() for x in xs]),
            "fg_ratio": mean(fg), "objects": len(every),
            "by_size": {s: {"iou": mean(got[s]), "copy": mean(copy[s]), "n": len(got[s])}
                        for s in SIZES if got[s]}}


def save_with_head(src: str, dst: str, model, cfg, steps: int) -> None:
    """``src``'s weights file with ``model.prop``'s parameters (fp16, as exported) and the config
    after the overrides; the other tensors are the file's own."""
    ck = load_checkpoint(src)
    state = dict(ck["model"])
    head = {f"prop.{k}": v.detach().half() if v.is_floating_point() else v
            for k, v in model.prop.state_dict().items()}
    missing = {k for k in set(head) - set(state) if not k.startswith("prop.prior.")}
    if missing:
        raise SystemExit(f"{src}: no Seq-Prop tensors {sorted(missing)[:3]} to replace")
    state.update(head)
    meta = dict(ck.get("meta", {}))
    meta["config"] = json.dumps(experiment_to_dict(cfg))
    meta["note"] = f"Seq-Prop head fine-tuned alone for {steps} steps by bench/seq_prop_probe.py"
    save_checkpoint(dst, model=state, meta=meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="src/tubelet/weights/propose_reduce_synth.pt")
    ap.add_argument("--data", default="data/synth_bench", help="folder with train/ and valid/")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    ap.add_argument("--keep-head", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", default=None, metavar="OUT.pt",
                    help="write the weights file with the trained head (and the overrides)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.save:
        check_output_file(args.save)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # --keep-head with model.seq_prop.prior_mask=true on a head trained without it: the prior
    # convs are new (zero init, so the head starts as the file's)
    model, cfg = load_propose_reduce(args.weights, args.overrides, fuse=False,
                                     missing_ok=("prop.prior.",))
    if not args.keep_head:
        model.prop = model.new_prop_head()  # as the method builds it, from the overridden config
    model.rcnn.requires_grad_(False)
    model.rcnn.eval()
    model.prop.train()
    params = list(model.prop.parameters())
    opt = (torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4) if args.optimizer == "adamw"
           else torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4))
    clip_norm = 1.0 if args.optimizer == "adamw" else 35.0
    aug = ClipAugConfig(short_sides=(160, 176, 192, 208, 224), max_size=400)
    split = {s: (f"{args.data}/{s}/instances.json", f"{args.data}/{s}/JPEGImages")
             for s in ("train", "valid")}
    train = ClipDataset(*split["train"], ClipConfig(num_frames=2, gap_range=(1, 5),
                                                    samples_per_video=4, min_visible=2, aug=aug),
                        seed=args.seed)
    fixed = ClipConfig(num_frames=2, gap_range=(1, 2), min_visible=2,
                       aug=ClipAugConfig(short_sides=(192,), hflip_prob=0.0))
    evals = {s: ClipDataset(*split[s], fixed, train=False, seed=5) for s in split}
    rows, t0 = [], time.time()
    if args.steps == 0:  # evaluate the head as it is (with --keep-head: the trained one)
        model.prop.eval()
        rows.append({"step": 0, **{s: pair_ious(model, d, args.pairs) for s, d in evals.items()}})
        print(json.dumps(rows[-1]), flush=True)
    for step in range(1, args.steps + 1):
        b = collate_clips([train[(2 * step + i) % len(train)] for i in range(2)])
        t = b["images"].shape[1]
        sizes = [tuple(s) for s in b["image_sizes"]]
        with torch.no_grad():
            feats = model.rcnn.extract(model.normalize(b["images"].flatten(0, 1)),
                                       [s for s in sizes for _ in range(t)])
        targets = [tg for c in b["targets"] for tg in c]
        losses = model.prop_losses(feats, targets, sizes, t)  # the method's own head losses
        if float(losses["prop_objects"]):
            opt.zero_grad()
            sum(v for k, v in losses.items() if k.startswith("loss")).backward()
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
            opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            model.prop.eval()
            row = {"step": step, "seconds": round(time.time() - t0, 1),
                   **{s: pair_ious(model, d, args.pairs) for s, d in evals.items()}}
            model.prop.train()
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.save:
        save_with_head(args.weights, args.save, model, cfg, args.steps)
    print(json.dumps({"weights": args.weights, "overrides": args.overrides, "lr": args.lr,
                      "optimizer": args.optimizer, "keep_head": args.keep_head,
                      "steps": args.steps, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
