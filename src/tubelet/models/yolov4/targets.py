"""Training targets of YOLOv4+1seg: anchors responsible for each object, classes at centroids.

Anchor rule (the paper gives none beyond "anchors ... given as priors"; this is YOLOv4's, whose
cfg sets ``iou_thresh=0.213``): for each ground-truth box, the shape IoU (:func:`wh_iou`, boxes
aligned at a corner) with every anchor of every level is computed; the best anchor, and every
other anchor whose shape IoU exceeds ``anchor_iou_thresh``, is positive at the cell of its level
that holds the box centre. Its regression target is the encoded δ (:func:`boxes.encode`).
When two objects claim the same (level, anchor, cell), the smaller box wins.

Negatives are all other anchors, except those whose *predicted* box already overlaps some ground
truth with IoU >= ``ignore_thresh`` (YOLOv3's ignore rule, 0.7 in YOLOv4's cfg): they get no
confidence loss (:func:`ignore_mask`).

Classes (paper §3.2, "Joint Losses"): "Each class is encoded at the centroid of each instance,
while the surrounding area is unlabeled in order to prevent the injection of noise in case of
nearby classes." On every level, the cell holding the instance's centroid (of its mask, or of its
box) is labelled with its class, for all anchors; every other cell is ignored by the class loss.
Two centroids in one cell: the smaller instance wins.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor
from torchvision.ops import box_iou

from tubelet.models.yolov4.anchors import wh_iou
from tubelet.models.yolov4.boxes import encode


@dataclass
class LevelTargets:
    """Targets of one pyramid level for a batch of B images (A anchors, H x W cells).

    Attributes:
        positive: ``[B, A, H, W]`` bool, anchors responsible for an object.
        deltas: ``[B, A, H, W, 4]`` encoded δ targets (zero where not positive).
        gt_index: ``[B, A, H, W]`` long index of the object in its image's targets, -1 elsewhere.
        classes: ``[B, H, W]`` long class at centroid cells, -1 (unlabelled) elsewhere.
    """
    positive: Tensor
    deltas: Tensor
    gt_index: Tensor
    classes: Tensor


def instance_centroids(masks: Tensor | None, boxes: Tensor) -> Tensor:
    """Centroid ``[M, 2]`` (x, y) of each instance's mask (pixel centres at +0.5) or, for an empty
    or missing mask, of its box.

    Args:
        masks: ``[M, H, W]`` bool, or None; boxes: ``[M, 4]`` (x1, y1, x2, y2).
    """
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    if masks is None or masks.shape[0] == 0:
        return centres
    m = masks.float()
    area = m.sum((1, 2))  # [M]
    xs = torch.arange(m.shape[2], device=m.device, dtype=m.dtype) + 0.5
    ys = torch.arange(m.shape[1], device=m.device, dtype=m.dtype) + 0.5
    cx = (m.sum(1) * xs).sum(1) / area.clamp(min=1)
    cy = (m.sum(2) * ys).sum(1) / area.clamp(min=1)
    return torch.where((area > 0)[:, None], torch.stack([cx, cy], 1), centres)


def _last_per_key(keys: Tensor) -> Tensor:
    """``[P]`` bool marking the last occurrence of each value of ``keys``."""
    if keys.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=keys.device)
    _, inv = torch.unique(keys, return_inverse=True)
    pos = torch.arange(keys.numel(), device=keys.device)
    last = torch.full((int(inv.max()) + 1,), -1, dtype=torch.long, device=keys.device)
    last = last.scatter_reduce(0, inv, pos, reduce="amax")
    keep = torch.zeros(keys.numel(), dtype=torch.bool, device=keys.device)
    keep[last] = True
    return keep


def _cells(points: Tensor, stride: float, h: int, w: int) -> tuple[Tensor, Tensor]:
    """(c_x, c_y) long cells holding ``[P, 2]`` pixel points, clamped to the ``h x w`` grid."""
    c = torch.floor(points / stride).long()
    return c[:, 0].clamp(0, w - 1), c[:, 1].clamp(0, h - 1)


def assign_targets(anchors: Tensor, strides: Sequence[int], sizes: Sequence[tuple[int, int]],
                   boxes: Sequence[Tensor], labels: Sequence[Tensor], centroids: Sequence[Tensor],
                   anchor_iou_thresh: float | None = 0.213) -> list[LevelTargets]:
    """Targets of every level (see the module docstring for the rules).

    Args:
        anchors: ``[L, A, 2]`` (w, h) pixels per level.
        strides: L strides; sizes: L (H_l, W_l) grid sizes.
        boxes: per image ``[M_b, 4]`` (x1, y1, x2, y2) pixels (positive sizes).
        labels: per image ``[M_b]`` long 0-based classes.
        centroids: per image ``[M_b, 2]`` (x, y) pixel centroids for the class targets.
        anchor_iou_thresh: extra positives above this shape IoU (None: the best anchor only).

    Returns:
        L :class:`LevelTargets`.
    """
    num_levels, num_anchors = anchors.shape[:2]
    batch = len(boxes)
    device = anchors.device
    out = []
    for (h, w) in sizes:
        out.append(LevelTargets(
            positive=torch.zeros(batch, num_anchors, h, w, dtype=torch.bool, device=device),
            deltas=torch.zeros(batch, num_anchors, h, w, 4, device=device),
            gt_index=torch.full((batch, num_anchors, h, w), -1, dtype=torch.long, device=device),
            classes=torch.full((batch, h, w), -1, dtype=torch.long, device=device)))
    flat_anchors = anchors.reshape(-1, 2)  # [L A, 2], level-major
    for b in range(batch):
        bx = boxes[b].to(device).reshape(-1, 4).float()
        if bx.shape[0] == 0:
            continue
        wh = (bx[:, 2:] - bx[:, :2]).clamp(min=1e-3)
        # smaller boxes are written last so they win collisions
        order = (wh[:, 0] * wh[:, 1]).argsort(descending=True)
        iou = wh_iou(wh[order], flat_anchors)  # [M, L A]
        sel = torch.zeros_like(iou, dtype=torch.bool)
        if anchor_iou_thresh is not None:
            sel |= iou > anchor_iou_thresh
        sel[torch.arange(iou.shape[0], device=device), iou.argmax(1)] = True
        m_idx, k_idx = torch.nonzero(sel, as_tuple=True)  # sorted by m, i.e. largest box first
        gt = order[m_idx]
        ctr = (bx[gt, :2] + bx[gt, 2:]) / 2
        cls_pts = centroids[b].to(device).reshape(-1, 2).float()[order]  # [M, 2], same order
        cls_lab = labels[b].to(device).reshape(-1)[order]
        for lvl, (t, s, (h, w)) in enumerate(zip(out, strides, sizes)):
            on = (k_idx // num_anchors) == lvl
            a = k_idx[on] % num_anchors
            cx, cy = _cells(ctr[on], s, h, w)
            keep = _last_per_key((a * h + cy) * w + cx)
            a, cx, cy, g = a[keep], cx[keep], cy[keep], gt[on][keep]
            t.positive[b, a, cy, cx] = True
            t.gt_index[b, a, cy, cx] = g
            grid = torch.stack([cx, cy], 1).float()
            t.deltas[b, a, cy, cx] = encode(bx[g], anchors[lvl, a], grid, s)
            px, py = _cells(cls_pts, s, h, w)
            keep = _last_per_key(py * w + px)
            t.classes[b, py[keep], px[keep]] = cls_lab[keep]
    return out


def best_anchor_level(boxes: Tensor, anchors: Tensor) -> Tensor:
    """``[M]`` long level of each ``[M, 4]`` box's best-shape-IoU anchor in ``[L, A, 2]``."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
    return wh_iou(wh, anchors.reshape(-1, 2)).argmax(1) // anchors.shape[1]


def ignore_mask(pred_boxes: Tensor, gt_boxes: Sequence[Tensor], thresh: float = 0.7) -> Tensor:
    """Anchors whose predicted box overlaps a ground truth of its image at IoU >= ``thresh``.

    Args:
        pred_boxes: ``[B, A, H, W, 4]`` decoded predictions (x1, y1, x2, y2).
        gt_boxes: per image ``[M_b, 4]``.

    Returns:
        ``[B, A, H, W]`` bool (callers remove the positives from it).
    """
    out = torch.zeros(pred_boxes.shape[:-1], dtype=torch.bool, device=pred_boxes.device)
    for b, gt in enumerate(gt_boxes):
        if gt.numel() == 0:
            continue
        iou = box_iou(pred_boxes[b].reshape(-1, 4).float(),
                      gt.to(pred_boxes.device).reshape(-1, 4).float())  # [A H W, M]
        out[b] = (iou.max(1).values >= thresh).reshape(out.shape[1:])
    return out


def match_proposals(proposals: Tensor, gt_boxes: Tensor, thresh: float = 0.5) -> Tensor:
    """``[K]`` long index of each ``[K, 4]`` proposal's highest-IoU ground truth ``[M, 4]``, -1
    when that IoU is below ``thresh`` (paper: "Computing IOU between proposals and ground truth we
    can assign the relative instance to be segmented"; 0.5 is Mask R-CNN's foreground threshold)."""
    if gt_boxes.shape[0] == 0 or proposals.shape[0] == 0:
        return torch.full((proposals.shape[0],), -1, dtype=torch.long, device=proposals.device)
    iou = box_iou(proposals.float(), gt_boxes.float())  # [K, M]
    best, idx = iou.max(1)
    return torch.where(best >= thresh, idx, torch.full_like(idx, -1))
