"""Simulated-detector benchmark of the sequence reduction and the trackers.

    python bench/sim_reduce_track.py [--seed 0] [--videos 50] [--crossing-videos 20] [--quick]
                                     [--markdown PATH]

Ground truth: the ``bench`` preset's valid split of the synthetic generator
(:mod:`tubelet.data.synth`), generated in memory frame by frame (no JPEG is written), plus a
*crossing* subset: the same preset with every instance of a video in one category
(``CROSSING_OVERRIDES``), so look-alikes meet often. The detector output is simulated from the GT
with the seeded noise model of :mod:`tubelet.sim` (every parameter is in the JSON):

1. **Reduction** (Propose-Reduce; Table 1c/1d of the 2021 category-aware paper): K x O simulated
   sequence proposals, scored by :func:`tubelet.ops.sequence_scores` (Eq. 1), reduced by
   :func:`tubelet.ops.reduce_sequences` under each row of ``REDUCTIONS``. "none" runs no NMS and,
   like the agnostic-only rows of Table 1c (Sec. 3.1: preserved sequences "are assigned with
   categories and corresponding scores"), outputs one record per (proposal, class) with class
   score > 0.05. "aware" is the released code's Gaussian soft-NMS (σ = 0.5); the paper's wording
   ("soft NMS of 0.5 IoU threshold") is the ``linear`` row.
2. **Tracking**: the same simulated per-frame detections go to every tracker of
   :mod:`tubelet.trackers`. IAI first gets its method's pre-assignment filter (score > 0.1,
   class-agnostic mask NMS 0.5, top 10; reference notes §3) and ID probabilities from
   :class:`tubelet.sim.SimulatedIdHead`. AP / AR@10 by :func:`tubelet.eval.evaluate`; identity
   switches by :func:`tubelet.sim.identity_switches` (definition there) over all GT instances
   and over those in a same-class encounter (:func:`tubelet.sim.close_encounters`).
3. **Speed** (``bench/sim_reduce_track_speed.py``): category-aware soft-NMS on 100 sequences x
   36 frames at 720x1280 (sequence IoU from RLE included), and one tracker update with 100
   detections against 50 tracks at 192x320; best of ``--repeats`` runs.

Prints one JSON object on stdout; markdown tables go to ``--markdown PATH`` or stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from tubelet.data.synth import (CONFUSABLE_PAIRS, SynthConfig, apply_overrides, config_dict,
                                generate_video, preset, video_index)
from tubelet.data.synth.shapes import categories_json
from tubelet.data.ytvis import YTVISDataset, load_results, load_ytvis
from tubelet.eval import evaluate
from tubelet.ops import (ReduceConfig, mask_iou, mask_iou_rle, mask_nms, reduce_sequences,
                         sequence_iou, sequence_scores)
from tubelet.sim import (DetectionNoise, Embedder, IdHeadNoise, ProposalNoise, SimulatedIdHead,
                         SwitchStats, close_encounters, identity_switches, rng_for,
                         simulate_detections, simulate_proposals)
from tubelet.sim.noise import STREAM_DETECTIONS, STREAM_ID_HEAD, STREAM_PROPOSALS
from tubelet.structures import rle as rle_ops
from tubelet.trackers import build_tracker
from tubelet.utils.fileio import write_text

from sim_reduce_track_speed import speed_soft_nms, speed_trackers  # noqa: E402 (bench/ sibling)

PAIRS = [tuple(p) for p in CONFUSABLE_PAIRS]
# Every instance of a video copies the first one's category; all stay in view, are born at
# frame 0 and are never hidden by a scheduled occluder: the only hard part is look-alikes meeting.
CROSSING_OVERRIDES = ["same_category_prob=1.0", "min_instances=3", "max_instances=5",
                      "exit_prob=0", "birth_prob=0", "full_occlusion_prob=0"]
NO_NMS = 1.01  # an agnostic IoU threshold above 1 suppresses nothing
REDUCTIONS: dict[str, ReduceConfig] = {  # Table 1c rows (agnostic θ, aware) and "none"
    "none": ReduceConfig(aware=False, agnostic_iou=NO_NMS, agnostic_score_stop=None),
    "agnostic 0.5": ReduceConfig(aware=False, agnostic_iou=0.5),
    "agnostic 0.5 + aware": ReduceConfig(aware=True, agnostic_iou=0.5),
    "agnostic 0.7 + aware": ReduceConfig(aware=True, agnostic_iou=0.7),
    "agnostic 0.9 + aware": ReduceConfig(aware=True, agnostic_iou=0.9),
    "agnostic 0.9 + aware linear 0.5": ReduceConfig(aware=True, agnostic_iou=0.9, method="linear"),
    "aware only": ReduceConfig(aware=True, agnostic_iou=NO_NMS, agnostic_score_stop=None),
}
TRACKERS: dict[str, tuple[str, dict]] = {  # row name -> (registry name, config overrides)
    "naive (IoU argmax, greedy gates)": ("naive", {}),
    "greedy BF/LBF (paper: class + IoU)": ("greedy", {}),
    "greedy BF/LBF (code: IoU only)": ("greedy", {"class_weight": 0.0}),
    "memory bank": ("memory", {}),
    "IAI assigner": ("iai", {}),
}
IOU_TRACKERS = ["naive (IoU argmax, greedy gates)", "greedy BF/LBF (paper: class + IoU)",
                "greedy BF/LBF (code: IoU only)"]
METRICS = ("AP", "AP50", "AP75", "AR1", "AR10")


# ------------------------------------------------------------------------------- ground truth
def synth_ground_truth(cfg: SynthConfig, seed: int, videos: int,
                       split: str = "valid") -> YTVISDataset:
    """The first ``videos`` videos of ``split``, as :func:`tubelet.data.synth.write_dataset`
    would label them (same generator indices), built in memory without rendering to disk."""
    pos = list(cfg.splits).index(split)
    vids, anns = [], []
    for i in range(videos):
        tracks: dict[int, tuple[int, list]] = {}  # instance id -> (category, T RLE-or-None)
        length = 0
        for fr in generate_video(cfg, seed, video_index(pos, i)):
            length += 1
            for iid, cid, m in fr.instances:
                tracks.setdefault(iid, (cid, [None] * fr.index))[1].append(
                    None if m is None else rle_ops.encode(m))
        vids.append({"id": i + 1, "width": cfg.width, "height": cfg.height, "length": length})
        for iid, (cid, segs) in sorted(tracks.items()):
            if any(s is not None for s in segs):
                anns.append({"id": len(anns) + 1, "video_id": i + 1, "category_id": cid,
                             "segmentations": segs, "iscrowd": 0})
    return load_ytvis({"videos": vids, "categories": categories_json(), "annotations": anns},
                      f"<synth {split} seed={seed}>")


def video_gt(gt: YTVISDataset, vid: int) -> tuple[np.ndarray, list[int], list[list]]:
    """``(masks [N, T, H, W] bool, labels [N], N lists of T RLE-or-None)`` of one video."""
    v = gt.videos[vid]
    anns = gt.annotations_of(vid)
    masks = np.stack([rle_ops.decode_many(a.segmentations, v.height, v.width) for a in anns]) \
        if anns else np.zeros((0, v.length, v.height, v.width), dtype=bool)
    return masks, [a.category_id for a in anns], [a.segmentations for a in anns]


def scores_of(gt: YTVISDataset, records: list[dict]) -> dict:
    stats = evaluate(gt, load_results(records, gt))
    return {k: float(stats[k]) for k in METRICS}


# ------------------------------------------------------------------------------- reduction
def run_reduction(gt: YTVISDataset, cfg: ProposalNoise, seed: int) -> dict:
    """AP / AR of every ``REDUCTIONS`` row on the simulated proposals of ``gt``."""
    cats = sorted(gt.categories)
    results: dict[str, list[dict]] = {name: [] for name in REDUCTIONS}
    n_props = 0
    by_dist: dict[int, list[float]] = {}  # |t - t_k| // 5 -> IoU with the key-frame object's GT
    for vid in sorted(gt.videos):
        masks, labels, gt_tracks = video_gt(gt, vid)
        props = simulate_proposals(masks, labels, cats, PAIRS, cfg,
                                   rng_for(seed, STREAM_PROPOSALS, vid))
        n_props += len(props.masks)
        for seq, tk, g in zip(props.masks, props.key_frame, props.source):
            for t in range(len(seq)) if g >= 0 else ():
                if gt_tracks[g][t] is not None:
                    by_dist.setdefault(min(abs(t - int(tk)) // 5, 4), []).append(
                        float(mask_iou_rle([seq[t]], [gt_tracks[g][t]])[0, 0]))
        scores = sequence_scores(props.frame_probs, props.nonempty).category[:, 1:]  # [P, C]
        iou = sequence_iou(props.masks)  # [P, P], shared by every setting
        for name, rc in REDUCTIONS.items():
            for r in reduce_sequences(scores, iou=iou, cfg=rc):
                results[name].append({"video_id": vid, "category_id": cats[r.klass],
                                      "score": r.score, "segmentations": props.masks[r.index]})
    n_vid = max(len(gt.videos), 1)
    out = {"proposals_per_video": n_props / n_vid,
           "proposal_iou_by_key_distance": {f"{5 * d}-{5 * d + 4}" if d < 4 else ">=20":
                                            float(np.mean(v)) for d, v in sorted(by_dist.items())},
           "rows": {}}
    for name, recs in results.items():
        out["rows"][name] = {**scores_of(gt, recs), "records_per_video": len(recs) / n_vid}
    return out


# ------------------------------------------------------------------------------- tracking
def iai_prefilter(frame, max_det: int = 10):
    """IAI inference before the assignment: score > 0.1, agnostic mask NMS 0.5, top 10."""
    idx = np.nonzero(frame.instances.scores > 0.1)[0]
    if len(idx):
        keep = mask_nms(frame.instances.scores[idx], frame.instances.masks[idx], iou_threshold=0.5)
        idx = idx[keep[:max_det]]
    return frame.subset(idx)


def run_tracking(gt: YTVISDataset, det: DetectionNoise, idn: IdHeadNoise, seed: int) -> dict:
    """AP / AR / identity switches of every ``TRACKERS`` row on ``gt``'s simulated detections."""
    cats = sorted(gt.categories)
    embedder = Embedder(cats, PAIRS, det.embedding, seed)
    trackers = {name: build_tracker(reg, category_ids=cats, **kw)
                for name, (reg, kw) in TRACKERS.items()}
    results = {name: [] for name in TRACKERS}
    switches = {name: SwitchStats() for name in TRACKERS}
    enc_switches = {name: SwitchStats() for name in TRACKERS}
    n_enc, n_enc_videos, n_dets, n_frames = 0, 0, 0, 0
    det_iou: list[float] = []  # mask IoU of each true-positive detection with its GT
    gt_step: list[float] = []  # GT mask IoU between consecutive frames (object motion)
    for vid in sorted(gt.videos):
        masks, labels, gt_tracks = video_gt(gt, vid)
        enc = close_encounters(masks, labels, PAIRS)
        involved = sorted({g for i, j, _ in enc for g in (i, j)})
        n_enc, n_enc_videos = n_enc + len(enc), n_enc_videos + bool(enc)
        frames = simulate_detections(masks, labels, cats, PAIRS, det, embedder,
                                     rng_for(seed, STREAM_DETECTIONS, vid))
        n_dets, n_frames = n_dets + sum(len(f) for f in frames), n_frames + len(frames)
        for t, f in enumerate(frames):  # calibration: TP mask quality, GT motion
            for m, g in zip(f.instances.masks[~f.duplicate], f.source[~f.duplicate]):
                if g >= 0:
                    det_iou.append(float(mask_iou(m[None], masks[g, t][None])[0, 0]))
            if t:
                both = masks[:, t].any((1, 2)) & masks[:, t - 1].any((1, 2))
                gt_step += [float(mask_iou(masks[g, t - 1][None], masks[g, t][None])[0, 0])
                            for g in np.nonzero(both)[0]]
        for name, tr in trackers.items():
            tr.reset()
            if TRACKERS[name][0] == "iai":
                head = SimulatedIdHead(idn, labels, PAIRS, rng_for(seed, STREAM_ID_HEAD, vid))
                for t, f in enumerate(frames):
                    f = iai_prefilter(f)
                    inst = dataclasses.replace(f.instances, id_probs=head.probs(f, masks[:, t]))
                    head.observe(f, tr.update(inst))
            else:
                for f in frames:
                    tr.update(f.instances)
            pred = tr.finalize()
            results[name] += pred.to_results(vid)
            switches[name] += identity_switches(gt_tracks, pred)
            enc_switches[name] += identity_switches([gt_tracks[g] for g in involved], pred)
    rows = {name: {**scores_of(gt, results[name]), **switches[name].summary(),
                   "encounter_switches": enc_switches[name].switches,
                   "encounter_swaps": enc_switches[name].swaps,
                   "encounter_gt_matched": enc_switches[name].gt_matched,
                   "encounter_switch_rate": enc_switches[name].summary()["switch_rate"]}
            for name in TRACKERS}
    return {"videos": len(gt.videos), "gt_instances": len(gt.annotations),
            "same_class_encounters": n_enc, "videos_with_encounters": n_enc_videos,
            "encounter_gt_instances": enc_switches[next(iter(TRACKERS))].gt_instances,
            "detections_per_frame": n_dets / max(n_frames, 1),
            "detection_iou_mean": float(np.mean(det_iou)) if det_iou else 0.0,
            "gt_consecutive_iou_mean": float(np.mean(gt_step)) if gt_step else 0.0,
            "gt_consecutive_iou_below_0.5": float(np.mean(np.array(gt_step) < 0.5))
            if gt_step else 0.0, "rows": rows}


# ------------------------------------------------------------------------------- verdicts
def judge(red: dict, bench: dict, cross: dict) -> dict:
    """The paper directions, checked on the numbers (no threshold beyond "better")."""
    r = red["rows"]
    aware, agn = r["agnostic 0.9 + aware"], r["agnostic 0.5"]
    b, c = bench["rows"], cross["rows"]
    naive, greedy = b["naive (IoU argmax, greedy gates)"], b["greedy BF/LBF (paper: class + IoU)"]
    greedy_code = b["greedy BF/LBF (code: IoU only)"]
    mem = c["memory bank"]
    iou_best = min(c[n]["encounter_switches"] for n in IOU_TRACKERS)
    return {
        "category_aware_raises_AP": {
            "holds": aware["AP"] > agn["AP"], "AP_agnostic_0.5": agn["AP"],
            "AP_agnostic_0.9_aware": aware["AP"], "AP_aware_only": r["aware only"]["AP"],
            "AP_agnostic_0.5_aware": r["agnostic 0.5 + aware"]["AP"]},
        "bf_lbf_fewer_switches_than_naive": {
            "holds": greedy["switches"] < naive["switches"],
            "holds_code_variant": greedy_code["switches"] < naive["switches"],
            "naive": naive["switches"], "greedy_paper": greedy["switches"],
            "greedy_code": greedy_code["switches"],
            "holds_on_swaps": greedy["swaps"] < naive["swaps"],
            "swaps": {"naive": naive["swaps"], "greedy_paper": greedy["swaps"],
                      "greedy_code": greedy_code["swaps"]}},
        "memory_beats_iou_on_same_class_crossings": {
            "holds": mem["encounter_switches"] < iou_best,
            "memory_encounter_switches": mem["encounter_switches"],
            "best_iou_tracker_encounter_switches": iou_best,
            "holds_on_swaps": mem["encounter_swaps"] < min(c[n]["encounter_swaps"]
                                                           for n in IOU_TRACKERS),
            "encounter_swaps": {n: c[n]["encounter_swaps"] for n in c},
            "memory_AP": mem["AP"], "iou_trackers_AP": {n: c[n]["AP"] for n in IOU_TRACKERS}},
    }


def _fmt(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(out: dict) -> str:
    lines = ["## Reduction (simulated Propose-Reduce proposals, bench valid)", "",
             "| setting | AP | AP50 | AP75 | AR@10 | records/video |", "|---|---|---|---|---|---|"]
    for name, row in out["reduction"]["rows"].items():
        lines.append(f"| {name} | {_fmt(row['AP'])} | {_fmt(row['AP50'])} | {_fmt(row['AP75'])} "
                     f"| {_fmt(row['AR10'])} | {row['records_per_video']:.1f} |")
    red = out["reduction"]
    lines += ["", f"Proposals per video: {red['proposals_per_video']:.1f}; mean mask IoU of a "
                  "proposal with its key-frame object's GT, by distance to the key frame: "
              + ", ".join(f"{k}: {v:.2f}" for k, v in red["proposal_iou_by_key_distance"].items())]
    for key, title in (("bench", "bench valid"), ("crossing", "crossing subset (same class)")):
        tr = out["tracking"][key]
        lines += ["", f"## Tracking ({title}: {tr['videos']} videos, {tr['gt_instances']} GT, "
                      f"{tr['same_class_encounters']} same-class encounters)", "",
                  f"Detections/frame {tr['detections_per_frame']:.2f}, TP mask IoU "
                  f"{tr['detection_iou_mean']:.2f}, GT IoU between consecutive frames "
                  f"{tr['gt_consecutive_iou_mean']:.2f} "
                  f"({100 * tr['gt_consecutive_iou_below_0.5']:.0f}% below 0.5). "
                  "Switches: switch-instances / matched GT; swaps: id changes to a track that "
                  "covered another GT instance before (the rest are fragmentations).", "",
                  "| tracker | AP | AR@10 | ID switches | switch rate | id changes | swaps "
                  "| encounter switches | encounter swaps |", "|---" * 9 + "|"]
        for name, row in tr["rows"].items():
            lines.append(f"| {name} | {_fmt(row['AP'])} | {_fmt(row['AR10'])} | {row['switches']}"
                         f" / {row['gt_matched']} | {row['switch_rate']:.3f} | "
                         f"{row['id_changes']} | {row['swaps']} | {row['encounter_switches']} / "
                         f"{row['encounter_gt_matched']} | {row['encounter_swaps']} |")
    sp = out["speed"]
    s = sp["soft_nms"]
    lines += ["", "## Speed (best of runs)", "", "| op | size | ms |", "|---|---|---|",
              f"| sequence IoU (RLE) | {s['sequences']} seq x {s['frames']} x {s['height']}x"
              f"{s['width']} | {s['sequence_iou_ms']:.1f} |",
              f"| category-aware soft-NMS | {s['sequences']} seq x {s['classes']} classes | "
              f"{s['soft_nms_ms']:.1f} |", f"| both | | {s['total_ms']:.1f} |"]
    for name, row in sp["trackers"].items():
        lines.append(f"| {name} update | {row['detections']} dets x {row['tracks']} tracks, "
                     f"192x320 | {row['update_ms']:.1f} |")
    lines += ["", "## Claims", ""]
    for name, c in out["claims"].items():
        lines.append(f"- {name}: **{'holds' if c['holds'] else 'does not hold'}** "
                     f"({json.dumps({k: v for k, v in c.items() if k != 'holds'})})")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="synth and noise seed")
    ap.add_argument("--videos", type=int, default=None,
                    help="bench valid videos (default: the preset's 50; --quick: 3)")
    ap.add_argument("--crossing-videos", type=int, default=None,
                    help="crossing-subset videos (default 20; --quick: 2)")
    ap.add_argument("--repeats", type=int, default=None, help="speed runs (default 5; quick 1)")
    ap.add_argument("--quick", action="store_true", help="small setting, < 1 minute")
    ap.add_argument("--markdown", default=None, help="write the markdown here (default: stderr)")
    args = ap.parse_args(argv)
    bench_cfg = preset("bench")
    cross_cfg = apply_overrides(bench_cfg, CROSSING_OVERRIDES)
    n_bench = args.videos if args.videos is not None else \
        (3 if args.quick else bench_cfg.split_counts()["valid"])
    n_cross = args.crossing_videos if args.crossing_videos is not None else \
        (2 if args.quick else 20)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if min(n_bench, n_cross) < 1 or repeats < 1 or args.seed < 0:
        ap.error("--videos, --crossing-videos and --repeats must be >= 1, --seed >= 0")
    pn, dn, idn = ProposalNoise(), DetectionNoise(), IdHeadNoise()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    gt_bench = synth_ground_truth(bench_cfg, args.seed, n_bench)
    gt_cross = synth_ground_truth(cross_cfg, args.seed, n_cross)
    timing["ground_truth_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    reduction = run_reduction(gt_bench, pn, args.seed)
    timing["reduction_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracking = {"bench": run_tracking(gt_bench, dn, idn, args.seed),
                "crossing": run_tracking(gt_cross, dn, idn, args.seed)}
    timing["tracking_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    size = (20, 8) if args.quick else (100, 36)
    speed = {"soft_nms": speed_soft_nms(*size, 720, 1280, repeats, args.seed),
             "trackers": speed_trackers(repeats, args.seed)}
    timing["speed_s"] = time.perf_counter() - t0
    out = {
        "seed": args.seed, "quick": args.quick,
        "config": {"videos": n_bench, "crossing_videos": n_cross, "repeats": repeats,
                   "synth_preset": "bench", "split": "valid",
                   "crossing_overrides": CROSSING_OVERRIDES, "confusable_pairs": PAIRS,
                   "reductions": {k: dataclasses.asdict(v) for k, v in REDUCTIONS.items()},
                   "trackers": {k: {"name": v[0], **v[1]} for k, v in TRACKERS.items()},
                   "synth": config_dict(bench_cfg)},
        "noise_model": {"proposals": dataclasses.asdict(pn), "detections": dataclasses.asdict(dn),
                        "id_head": dataclasses.asdict(idn)},
        "reduction": reduction, "tracking": tracking, "speed": speed,
        "claims": judge(reduction, tracking["bench"], tracking["crossing"]),
        "timing": timing,
    }
    md = markdown(out)
    print(json.dumps(out))
    if args.markdown:
        write_text(args.markdown, md)
    else:
        sys.stderr.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
