"""How well does the IAI ID head read identities from its memory? Teacher-forced ID accuracy.

    python bench/iai_id_accuracy.py [--weights src/tubelet/weights/iai_condinst_synth.pt]
        [--gt data/synth_bench/valid/instances.json] [--images data/synth_bench/valid/JPEGImages]
        [--clips 24] [--seed 0] [key=value ...]

Clips are drawn as in training (the weights' ``data.clip``: 5 frames in temporal order, gaps in
[1, 3], the training augmentation), from a split the weights did not train on, and run through
:meth:`IAICondInst.teacher_forced`: the memory is written with the ground-truth ID masks, exactly
as in training, so any error comes from the ID head, not from the detector or the assigner. At
every FCOS-positive location the predicted slot (argmax of the N sigmoid ID scores) is compared
with its target: "new" (slot N-1) where the object appears for the first time in the clip, its
slot (0, 1, 2, ... in order of first appearance) afterwards.

Prints one JSON object: accuracy over all positive locations, for "new" targets, for slot
targets (by slot, with the share of each predicted slot), and the confusion of slot targets with
"new" (predicting "new" for a known object is what makes the assigner open a new track and use
up the IDs).

``--no-id-memory`` writes every memory frame with an all-background ID mask instead (the memory
keeps the frames' features, loses the identities): the accuracy that is left is what the head
gets without reading IDs from the memory, so the gap to the normal run is what it does read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import tubelet.models.iai.model as iai_model  # noqa: E402
from tubelet.data.ytvis import load_ytvis  # noqa: E402
from tubelet.engine.loading import load_method  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="src/tubelet/weights/iai_condinst_synth.pt")
    ap.add_argument("--gt", default="data/synth_bench/valid/instances.json")
    ap.add_argument("--images", default="data/synth_bench/valid/JPEGImages")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-id-memory", action="store_true",
                    help="write the memory with all-background ID masks (the probe above)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, cfg = load_method(None, args.weights, args.overrides, fuse=False)
    if args.no_id_memory:
        # teacher_forced paints the ID masks with this module-level function; every slot -1
        # ("not written") leaves the whole map background
        real = iai_model.id_label_map
        iai_model.id_label_map = lambda slots, masks, n: real(torch.full_like(slots, -1), masks, n)
    if cfg.method != "iai-condinst":
        raise SystemExit(f"{args.weights}: an {cfg.method} model, not iai-condinst")
    gt = load_ytvis(args.gt)
    data = model.train_dataset(gt, args.images, cfg.data, args.seed)
    n_ids = model.iai.num_ids
    step = max(1, len(data) // args.clips)
    new_slot = n_ids - 1
    confusion = defaultdict(lambda: defaultdict(int))  # target slot -> predicted slot -> count
    with torch.no_grad():
        for idx in range(0, step * args.clips, step):
            batch = model.collate([data[idx % len(data)]])
            images = batch["images"]  # [1, T, 3, H, W] uint8
            b, t = images.shape[:2]
            clips = model.normalize(images.flatten(0, 1)).unflatten(0, (b, t))
            _, id_logits, _, id_t, _ = model.iai.teacher_forced(clips, batch["targets"])
            pos = id_t.sum(-1) > 0  # [B*T, L]
            target = id_t.argmax(-1)[pos]  # [P]
            pred = id_logits.argmax(-1)[pos]  # [P]
            for tv, pv in zip(target.tolist(), pred.tolist()):
                confusion[tv][pv] += 1

    def share(targets, hit) -> tuple[int, float]:
        """(locations whose target is in ``targets``, share of them with ``hit(target, pred)``)."""
        rows = [(tv, pv, c) for tv in targets for pv, c in confusion[tv].items()]
        n = sum(c for _, _, c in rows)
        return n, round(sum(c for tv, pv, c in rows if hit(tv, pv)) / max(n, 1), 4)

    slot_targets = sorted(k for k in confusion if k != new_slot)
    total, accuracy = share(list(confusion), lambda tv, pv: tv == pv)
    new_locations, new_accuracy = share([new_slot], lambda tv, pv: tv == pv)
    _, slot_accuracy = share(slot_targets, lambda tv, pv: tv == pv)
    _, slot_predicted_new = share(slot_targets, lambda tv, pv: pv == new_slot)
    slots = {}
    for k in slot_targets:
        c = sum(confusion[k].values())
        slots[str(k)] = {"locations": c, "accuracy": round(confusion[k][k] / c, 4),
                         "predicted": {("new" if p == new_slot else str(p)): round(v / c, 3)
                                       for p, v in sorted(confusion[k].items()) if v}}
    print(json.dumps({
        "weights": args.weights, "gt": args.gt, "clips": args.clips,
        "no_id_memory": args.no_id_memory,
        "frames_per_clip": int(cfg.data.clip.num_frames), "num_ids": n_ids,
        "positive_locations": total, "accuracy": accuracy,
        "new_accuracy": new_accuracy, "new_locations": new_locations,
        "slot_accuracy": slot_accuracy, "slot_predicted_new": slot_predicted_new,
        "per_slot": slots}, indent=1))


if __name__ == "__main__":
    main()
