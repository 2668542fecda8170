"""FCOS head (Tian et al. 2019) with CondInst's controller (Tian et al. 2020).

Shared over pyramid levels: a classification tower and a regression tower of ``num_convs``
3x3 conv + GroupNorm + ReLU layers; on the classification tower the class logits, on the
regression tower the ltrb distances, the centerness logit (the FCOS "centerness on the regression
branch" improvement) and the CondInst controller (the dynamic mask head's parameters).

Box regression (per level l with stride s_l and learnable scalar scale a_l):
``ltrb = act(a_l * x) * s_l`` with act = ReLU (default) or exp. Multiplying by the stride is the
FCOS "normalised regression targets" improvement; the FCOS paper's ``exp(a_l x)`` in pixels is
``box_activation="exp"`` with the stride absorbed by a_l.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def group_norm(channels: int, max_groups: int = 32, min_group_size: int = 4) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``max_groups`` dividing ``channels`` and leaving
    at least ``min_group_size`` channels per group: GN(32) at width 256 as in FCOS, while narrow
    CPU configs keep enough values per group to normalise even on a 1x1 P7 map."""
    groups = max(g for g in range(1, max_groups + 1)
                 if channels % g == 0 and (channels // g >= min_group_size or g == 1))
    return nn.GroupNorm(groups, channels)


class Scale(nn.Module):
    """A learnable scalar multiplier (one per FPN level)."""

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


def _tower(channels: int, num_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), group_norm(channels), nn.ReLU()]
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """Per-level dense predictions.

    Args:
        in_channels: FPN width.
        num_classes: C (foreground classes; sigmoid per class, no background logit).
        num_levels: number of pyramid levels fed to the head (5 for P3-P7).
        strides: stride of each level, e.g. ``(8, 16, 32, 64, 128)``.
        num_convs: conv layers per tower (4 in the papers).
        num_controller_params: outputs of the controller conv (169 for CondInst's default
            dynamic head); 0 = no controller.
        prior_prob: initial foreground probability of the class logits (0.01, focal-loss init).
        box_activation: ``"relu"`` or ``"exp"``.
    """

    def __init__(self, in_channels: int, num_classes: int, strides: tuple[int, ...],
                 num_convs: int = 4, num_controller_params: int = 169, prior_prob: float = 0.01,
                 box_activation: str = "relu"):
        super().__init__()
        if box_activation not in ("relu", "exp"):
            raise ValueError(f"box_activation must be 'relu' or 'exp', got {box_activation!r}")
        self.strides = tuple(strides)
        self.box_activation = box_activation
        self.cls_tower = _tower(in_channels, num_convs)
        self.box_tower = _tower(in_channels, num_convs)
        self.cls_logits = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.box_pred = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.ctr_logits = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.controller = (nn.Conv2d(in_channels, num_controller_params, 3, padding=1)
                           if num_controller_params > 0 else None)
        self.scales = nn.ModuleList([Scale(1.0) for _ in self.strides])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        # focal-loss prior: every location starts as background with probability 1 - prior_prob
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        self.merged: MergedTowers | None = None  # set by fuse_for_inference (one-way)

    def fuse_for_inference(self) -> None:
        """Run both towers and the three predictors as one stack (:class:`MergedTowers`): the
        same outputs with a third of the operator calls. One-way, like BatchNorm folding."""
        self.merged = MergedTowers(self)

    def forward(self, feats: list[Tensor], with_controller: bool = True) -> dict[str, list[Tensor]]:
        """feats: per level ``[B, F, H_l, W_l]`` -> per-level lists of
        ``cls`` ``[B, C, H_l, W_l]`` logits, ``box`` ``[B, 4, H_l, W_l]`` ltrb pixels (>= 0),
        ``ctr`` ``[B, 1, H_l, W_l]`` logits, ``controller`` ``[B, P, H_l, W_l]`` (if any) and
        ``features`` ``[B, F, H_l, W_l]`` (classification tower output, for embeddings).

        ``with_controller=False`` (inference) skips the dense controller conv and returns the box
        tower outputs as ``box_feats`` instead: :meth:`controller_at` then evaluates the controller
        at the few detected locations only (at 169 outputs it is the widest conv of the head)."""
        out: dict[str, list[Tensor]] = {"cls": [], "box": [], "ctr": [], "controller": [],
                                        "features": [], "box_feats": []}
        for level, x in enumerate(feats):
            if self.merged is not None and not self.training:
                cls_feat, box_feat, cls, box, ctr = self.merged(x)
            else:
                cls_feat, box_feat = self.cls_tower(x), self.box_tower(x)
                cls, box, ctr = self.cls_logits(cls_feat), self.box_pred(box_feat), \
                    self.ctr_logits(box_feat)
            reg = self.scales[level](box)
            reg = torch.relu(reg) if self.box_activation == "relu" else torch.exp(reg.clamp(max=20))
            out["cls"].append(cls)
            out["box"].append(reg * self.strides[level])
            out["ctr"].append(ctr)
            out["features"].append(cls_feat)
            if self.controller is not None:
                if with_controller:
                    out["controller"].append(self.controller(box_feat))
                else:
                    out["box_feats"].append(box_feat)
        return out

    def controller_at(self, box_feats: list[Tensor], image: Tensor, level: Tensor, y: Tensor,
                      x: Tensor) -> Tensor:
        """``self.controller(box_feats[level])[image, :, y, x]`` for N locations -> ``[N, P]``.

        The 3x3 conv (padding 1) at one location is the sum over its zero-padded 3x3 patch.
        """
        conv = self.controller
        out = box_feats[0].new_zeros(image.shape[0], conv.out_channels)
        d = torch.arange(3, device=image.device)
        for lv in torch.unique(level).tolist():
            sel = torch.nonzero(level == lv).flatten()
            f = F.pad(box_feats[lv], (1, 1, 1, 1))  # [B, F, H+2, W+2]
            yy = y[sel][:, None, None] + d[None, :, None]  # [n, 3, 1] rows of the patch
            xx = x[sel][:, None, None] + d[None, None, :]  # [n, 1, 3] columns
            patches = f[image[sel][:, None, None], :, yy, xx]  # [n, 3, 3, F]
            out[sel] = torch.einsum("nijf,pfij->np", patches, conv.weight) + conv.bias
        return out


class MergedTowers(nn.Module):
    """The classification and regression towers of an :class:`FCOSHead` as one stack of width
    2F, for inference. Layer 1 is one conv with both towers' filters stacked (both read the same
    level map); later layers are grouped convs (groups=2), so each half only sees its own
    tower; GroupNorm with twice the groups normalises exactly the same channel groups; the three
    predictors are one conv on the concatenation whose cross blocks are zero. Every output is the
    same sum of the same products as the separate towers' (the summation order inside a conv
    kernel may differ, so floats agree to rounding).
    """

    def __init__(self, head: FCOSHead):
        super().__init__()
        layers: list[nn.Module] = []
        cls_mods, box_mods = list(head.cls_tower), list(head.box_tower)
        first = True
        for a, b in zip(cls_mods, box_mods):
            if isinstance(a, nn.Conv2d):
                conv = nn.Conv2d(a.in_channels * (1 if first else 2), 2 * a.out_channels,
                                 a.kernel_size, a.stride, a.padding, groups=1 if first else 2)
                with torch.no_grad():
                    conv.weight.copy_(torch.cat([a.weight, b.weight]))
                    conv.bias.copy_(torch.cat([a.bias, b.bias]))
                layers.append(conv)
                first = False
            elif isinstance(a, nn.GroupNorm):
                gn = nn.GroupNorm(2 * a.num_groups, 2 * a.num_channels, eps=a.eps)
                with torch.no_grad():
                    gn.weight.copy_(torch.cat([a.weight, b.weight]))
                    gn.bias.copy_(torch.cat([a.bias, b.bias]))
                layers.append(gn)
            else:
                layers.append(a)
        self.tower = nn.Sequential(*layers)
        f = head.cls_logits.in_channels
        c = head.cls_logits.out_channels
        self.splits = (c, 4, 1)  # cls logits, ltrb, centerness
        pred = nn.Conv2d(2 * f, c + 5, 3, padding=1)
        with torch.no_grad():
            pred.weight.zero_()
            pred.weight[:c, :f] = head.cls_logits.weight
            pred.weight[c:c + 4, f:] = head.box_pred.weight
            pred.weight[c + 4:, f:] = head.ctr_logits.weight
            pred.bias.copy_(torch.cat([head.cls_logits.bias, head.box_pred.bias,
                                       head.ctr_logits.bias]))
        self.pred = pred
        self.width = f
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``[B, F, H, W]`` -> (cls features, box features, cls logits, ltrb (before scale and
        activation), centerness logits), as the separate towers give them."""
        t = self.tower(x)  # [B, 2F, H, W]
        cls, box, ctr = self.pred(t).split(self.splits, dim=1)
        return t[:, :self.width], t[:, self.width:], cls, box, ctr
