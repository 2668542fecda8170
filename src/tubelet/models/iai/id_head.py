"""IAI's identification head, its training targets and loss (Sec. 3.2 "ID Head", Eq. 3-4).

Slots: the head predicts N sigmoid scores per location (N = 20 on YouTube-VIS 2019). Slots
0..N-2 are instances already written to the memory; slot N-1 is "new"; a background location has
"no ID", an all-zero target (REFERENCE_NOTES §3).

Training with teacher forcing (one sampled clip, frames in temporal order): the k-th object of
the clip to appear (ties within a frame by identity value) takes slot ``order[k]``. ``order = 0,
1, 2, ...`` (``slot_order: appearance``, the default) is the order in which the inference-time
assigner hands out IDs, as the paper does (new ID S, then S + 1, ...); with it, slots beyond the
usual object count of a clip are rarely trained, and a video with more objects than that sees
its later IDs predicted "new" again and again until every slot is used (measured on the bench
split, session 4). ``slot_order: random`` draws a random permutation of 0..N-2 per clip, AOT's
random identity permutation (Sec. 3.2 "Revisit ID Mechanism"): every slot is trained, so the head
has to read an object's slot from the memory. At the CPU budgets it did worse (session 6: ID
probabilities flat over the slots; bench 1.2 vs 3.7 AP, DAVIS 5.0 vs 35.3 with the assigner).
A positive location's target is
  * "new" (N-1) on the object's first appearance in the clip (its memory entry does not exist yet);
  * the object's slot afterwards.
An object past the N-1 available slots gets no slot, is never written to the memory and so is
"new" in every frame it appears; at inference such newcomers are discarded (the paper's rule once
S = N-1).

Loss: sigmoid focal loss (alpha 0.25, gamma 2; the classification loss's form, Eq. 4) over all
locations, divided by the number of positive locations.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from tubelet.models.condinst.fcos import group_norm
from tubelet.models.condinst.losses import sigmoid_focal_loss


class IDHead(nn.Module):
    """ID branch on the FPN levels, in parallel with the class tower (weights shared over levels).

    3x3 conv + GroupNorm + ReLU, then a 3x3 conv to ``num_ids`` logits whose bias starts at the
    focal-loss prior (every slot has probability ``prior_prob`` at initialisation).

    Args:
        in_channels: FPN width F.
        num_ids: N, slots including "new" (20).
        prior_prob: initial probability (0.01).
    """

    def __init__(self, in_channels: int, num_ids: int = 20, prior_prob: float = 0.01):
        super().__init__()
        if num_ids < 2:
            raise ValueError(f"num_ids must be >= 2 (one ID and 'new'), got {num_ids}")
        self.num_ids = num_ids
        self.tower = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1),
                                   group_norm(in_channels), nn.ReLU())
        self.logits = nn.Conv2d(in_channels, num_ids, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)  # FCOS head init
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """feats: per level ``[B, F, H_l, W_l]`` -> per level ``[B, N, H_l, W_l]`` logits."""
        return [self.logits(self.tower(x)) for x in feats]


def clip_id_slots(frame_ids: Sequence[Tensor], num_ids: int,
                  order: Sequence[int] | None = None) -> tuple[list[Tensor], list[Tensor]]:
    """Slots of a clip's objects and their first appearances.

    Args:
        frame_ids: T tensors ``[M_t]`` long, the clip-level identity of each ground-truth object
            of frame t (the same identity in every frame an object appears).
        num_ids: N; slots 0..N-2 are available.
        order: the slot of the k-th object to appear, ``[N-1]`` (a permutation of 0..N-2);
            None = 0, 1, 2, ... (order of appearance).

    Returns:
        ``(slots, first)``: T tensors ``[M_t]`` long (the object's slot, -1 when the clip has more
        than N-1 objects and this one came too late) and T tensors ``[M_t]`` bool (True in the
        frame where the identity first appears in the clip).
    """
    if order is None:
        order = list(range(num_ids - 1))
    order = [int(o) for o in order]
    if sorted(order) != list(range(num_ids - 1)):
        raise ValueError(f"order must be a permutation of 0..{num_ids - 2}, got {order}")
    slot_of: dict[int, int] = {}
    taken = 0  # objects given a slot so far
    slots, first = [], []
    for ids in frame_ids:
        ids_list = [int(i) for i in ids.reshape(-1).tolist()]
        if len(set(ids_list)) != len(ids_list):
            raise ValueError(f"an identity appears twice in one frame: {ids_list}")
        is_first = [i not in slot_of for i in ids_list]
        for i in sorted(i for i, f in zip(ids_list, is_first) if f):
            slot_of[i] = order[taken] if taken < num_ids - 1 else -1
            taken += 1
        # an overflowing identity is recorded with -1 so it is not "first" again
        dev = ids.device
        slots.append(torch.tensor([slot_of[i] for i in ids_list], dtype=torch.long, device=dev))
        first.append(torch.tensor(is_first, dtype=torch.bool, device=dev))
    return slots, first


def id_targets(gt_index: Tensor, slots: Tensor, first: Tensor, num_ids: int) -> Tensor:
    """Per-location ID targets of one frame.

    Args:
        gt_index: ``[L]`` long, the ground-truth object FCOS assigned to each location (-1 =
            background), e.g. :attr:`FCOSTargets.gt_index`.
        slots: ``[M]`` long slot of each object (-1 = none), from :func:`clip_id_slots`.
        first: ``[M]`` bool, first appearance in the clip.
        num_ids: N.

    Returns:
        ``[L, N]`` float one-hot rows: column N-1 ("new") when the object appears for the first
        time or has no slot, its slot otherwise; all-zero rows for background.
    """
    out = torch.zeros(gt_index.shape[0], num_ids, device=gt_index.device)
    pos = gt_index >= 0
    if not bool(pos.any()):
        return out
    obj = gt_index[pos]  # [P]
    target = torch.where(first[obj] | (slots[obj] < 0), torch.full_like(obj, num_ids - 1),
                         slots[obj])
    out[pos] = nn.functional.one_hot(target, num_ids).to(out.dtype)
    return out


def id_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """ID focal loss normalised by positives (Eq. 4).

    Args:
        logits: ``[..., N]`` ID logits (e.g. ``[B, L, N]``).
        targets: same shape, from :func:`id_targets` (all-zero rows = background).

    Returns:
        scalar ``focal_sum / max(#positive rows, 1)``.
    """
    num_pos = max(int((targets.sum(-1) > 0).sum()), 1)
    return sigmoid_focal_loss(logits, targets, alpha, gamma) / num_pos
