"""Readable text for evaluator results (COCO-style summary lines, per-category table)."""
from __future__ import annotations

# (key, AP or AR, IoU, area, occlusion, maxDets) of each summary line, in the official order.
_LINES = [
    ("AP", "AP", "0.50:0.95", "all", None, -1), ("AP50", "AP", "0.50", "all", None, -1),
    ("AP75", "AP", "0.75", "all", None, -1), ("AP_s", "AP", "0.50:0.95", "small", None, -1),
    ("AP_m", "AP", "0.50:0.95", "medium", None, -1), ("AP_l", "AP", "0.50:0.95", "large", None, -1),
    ("AP_occ_light", "AP", "0.50:0.95", "all", "light", -1),
    ("AP_occ_medium", "AP", "0.50:0.95", "all", "medium", -1),
    ("AP_occ_heavy", "AP", "0.50:0.95", "all", "heavy", -1),
    ("AR@0", "AR", "0.50:0.95", "all", None, 0), ("AR@1", "AR", "0.50:0.95", "all", None, 1),
    ("AR@2", "AR", "0.50:0.95", "all", None, 2), ("AR_s", "AR", "0.50:0.95", "small", None, -1),
    ("AR_m", "AR", "0.50:0.95", "medium", None, -1), ("AR_l", "AR", "0.50:0.95", "large", None, -1),
    ("AR_occ_light", "AR", "0.50:0.95", "all", "light", -1),
    ("AR_occ_medium", "AR", "0.50:0.95", "all", "medium", -1),
    ("AR_occ_heavy", "AR", "0.50:0.95", "all", "heavy", -1),
]


def summary_lines(stats: dict) -> list[str]:
    """The official summary lines of one stats dict (as returned by ``evaluate``)."""
    ar_keys = [k for k in stats if k.startswith("AR") and k[2:].isdigit()]  # AR1, AR10, AR100
    max_dets = [int(k[2:]) for k in ar_keys]
    out = []
    for key, kind, iou, area, occ, m in _LINES:
        if key.startswith("AR@"):
            key = ar_keys[int(key[3:])]
        if key not in stats:
            continue
        title = "Average Precision  (AP)" if kind == "AP" else "Average Recall     (AR)"
        where = f"area={area:>6s}" if occ is None else f"occ={occ:>7s}"
        out.append(f" {title} @[ IoU={iou:<9} | {where} | maxDets={max_dets[m]:>3d} ] "
                   f"= {stats[key]:0.3f}")
    return out


def format_report(stats: dict, per_category: bool = False) -> str:
    """Summary lines, the YouTube-VIS 2022 short/long blocks and optionally per-category AP."""
    lines = summary_lines(stats)
    for part in ("short", "long"):
        if part in stats:
            lines += ["", f"{part} videos:"] + summary_lines(stats[part])
    if "mAP_2022" in stats:
        lines += ["", " mAP (YouTube-VIS 2022) = (AP_short + AP_long) / 2 = "
                  f"{stats['mAP_2022']:0.3f}"]
    if per_category:
        cats = stats.get("per_category", {})
        width = max([len(n) for n in cats] + [8])
        lines += ["", f" {'category':<{width}}  AP"]
        lines += [f" {name:<{width}}  {ap:0.3f}" if ap >= 0 else f" {name:<{width}}  -  (no GT)"
                  for name, ap in cats.items()]
    return "\n".join(lines)
