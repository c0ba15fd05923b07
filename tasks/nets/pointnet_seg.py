"""Point-cloud segmentation networks: ``points [B, N, C] (+ lengths [B]) -> logits [B, N, K]``.

- ``pointnet_seg`` (Qi et al. 2017, CVPR): per-point features from a shared MLP, concatenated
  with the cloud's global (max-pooled) feature, then a per-point MLP.
- ``pointnet2_seg`` (Qi et al. 2017, NeurIPS): the PointNet++ set-abstraction encoder of
  :mod:`visionflow.tasks.nets.pointnet2`, then feature-propagation levels back to every input
  point: features interpolated from the 3 nearest points of the coarser level, weighted by
  inverse squared distance, concatenated with the finer level's own features (skip link) and
  mixed by a shared MLP.

Ragged batches are exact: padded points (index >= ``lengths``) are never pooled, sampled,
grouped or interpolated from, so a valid point's logits do not depend on the padding (in eval
mode; in training, batch norm's statistics include the padded points, as in the classifiers).
"""

from __future__ import annotations

import torch
from torch import nn

from visionflow.tasks.nets.argument_sets import flat_argument_sets
from visionflow.tasks.nets.families import POINTCLOUD_SEGMENTATION_NETS
from visionflow.tasks.nets.pointnet import PointNetBackbone, TNet, masked_max, shared_mlp
from visionflow.tasks.nets.pointnet2 import PointNet2Backbone, SetAbstractionEncoder

#: squared distances are clamped to this before inversion (a point on a coarse point)
COINCIDENT = 1e-10


def per_point_head(widths: list[int], num_classes: int, dropout: float) -> nn.Sequential:
    """``[B, widths[0], N] -> [B, K, N]``: a shared MLP, dropout, a 1x1 convolution."""
    return nn.Sequential(
        shared_mlp(widths), nn.Dropout(dropout), nn.Conv1d(widths[-1], num_classes, 1)
    )


class PointNetSegmentation(nn.Module):
    """``points [B, N, C] (+ lengths [B]) -> logits [B, N, K]``: per-point features (shared MLP
    ``local``), a global feature (``lift`` from them, max-pooled) appended to each, and a
    per-point ``head`` MLP (``head[0] = local[-1] + lift[-1]``); ``align``: a T-Net or None."""

    def __init__(
        self,
        align: TNet | None,
        local: list[int],
        lift: list[int],
        head: list[int],
        num_classes: int,
        dropout: float,
    ):
        super().__init__()
        self.align = align
        self.local, self.lift = shared_mlp(local), shared_mlp(lift)
        self.head = per_point_head(head, num_classes, dropout)

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        features = points.transpose(1, 2)  # [B, C, N]
        if self.align is not None:
            features = torch.bmm(self.align(features, lengths), features)
        local = self.local(features)  # [B, w, N]
        pooled = masked_max(self.lift(local), lengths)  # [B, F]
        combined = torch.cat([local, pooled[:, :, None].expand(-1, -1, local.shape[2])], 1)
        return self.head(combined).transpose(1, 2)  # [B, N, K]


@POINTCLOUD_SEGMENTATION_NETS.register("pointnet_seg")
@flat_argument_sets
def pointnet_seg(
    *, num_classes: int, backbone: PointNetBackbone, dropout: float = 0.3
) -> nn.Module:
    """PointNet segmentation: per-point features (shared MLP ``width, width``), a global
    feature (``2 width, feature_dim``, max pool) appended to each, then a per-point MLP
    ``8 width, 4 width, 2 width`` to the classes; ``tnet`` adds the input alignment network."""
    width, feature_dim = backbone.width, backbone.feature_dim
    return PointNetSegmentation(
        backbone.alignment(),
        local=[backbone.in_channels, width, width],
        lift=[width, width * 2, feature_dim],
        head=[width + feature_dim, width * 8, width * 4, width * 2],
        num_classes=num_classes,
        dropout=dropout,
    )


def interpolate_features(
    xyz: torch.Tensor,
    known_xyz: torch.Tensor,
    known_features: torch.Tensor,
    known_lengths: torch.Tensor,
    neighbours: int = 3,
) -> torch.Tensor:
    """Features at ``xyz [B, N, 3]`` interpolated from those of the ``neighbours`` nearest valid
    points of ``known_xyz [B, S, 3]`` (``known_features [B, F, S]``, the first
    ``known_lengths [B]`` valid), weighted by inverse squared distance: ``[B, F, N]``."""
    squared = torch.cdist(xyz, known_xyz, compute_mode="donot_use_mm_for_euclid_dist").square()
    padded = torch.arange(known_xyz.shape[1], device=xyz.device) >= known_lengths[:, None]
    squared = squared.masked_fill(padded[:, None, :], float("inf"))  # [B, N, S]
    distance, index = squared.topk(min(neighbours, known_xyz.shape[1]), dim=2, largest=False)
    weights = 1 / distance.clamp_min(COINCIDENT)  # 0 for padded neighbours (1 / inf)
    weights = weights / weights.sum(2, keepdim=True)  # [B, N, k]
    batch, channels = known_features.shape[:2]
    gathered = known_features.gather(2, index.flatten(1)[:, None].expand(-1, channels, -1))
    return (gathered.view(batch, channels, *index.shape[1:]) * weights[:, None]).sum(3)


class FeaturePropagation(nn.Module):
    """``(fine level, coarse level, coarse features [B, F_c, S]) -> [B, widths[-1], N]``: the
    coarse features interpolated to the fine points, concatenated with the fine level's own
    features ``[B, F_f, N]`` when it has any, through a shared MLP (``widths[0] = F_c + F_f``)."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.mlp = shared_mlp(widths)

    def forward(
        self,
        fine: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor],
        coarse: tuple[torch.Tensor, torch.Tensor],
        coarse_features: torch.Tensor,
    ) -> torch.Tensor:
        (xyz, skip, _), (coarse_xyz, coarse_lengths) = fine, coarse
        features = interpolate_features(xyz, coarse_xyz, coarse_features, coarse_lengths)
        return self.mlp(features if skip is None else torch.cat([features, skip], 1))


class PointNet2Segmentation(SetAbstractionEncoder):
    """``points [B, N, C] (+ lengths [B]) -> logits [B, N, K]``: the encoder's hierarchy, its
    global feature appended to the deepest level's points, then one feature-propagation level
    per set-abstraction level down to the input points (whose skip features are their ``C``
    input channels), and a per-point head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        encoder: tuple[list, list[int]],
        propagation: list[list[int]],
        head: list[int],
        dropout: float,
    ):
        super().__init__(in_channels, *encoder)
        self.global_mix = shared_mlp(propagation[0])
        self.propagate = nn.ModuleList(FeaturePropagation(w) for w in propagation[1:])
        self.head = per_point_head(head, num_classes, dropout)

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        hierarchy, pooled = self.encode(points, lengths)
        deepest = hierarchy[-1][1]  # [B, F_L, S_L]
        expanded = pooled[:, :, None].expand(-1, -1, deepest.shape[2])
        features = self.global_mix(torch.cat([deepest, expanded], 1))
        hierarchy[0] = (hierarchy[0][0], points.transpose(1, 2), hierarchy[0][2])
        for level, propagation in enumerate(self.propagate):
            fine, coarse = hierarchy[-2 - level], hierarchy[-1 - level]
            features = propagation(fine, (coarse[0], coarse[2]), features)
        return self.head(features).transpose(1, 2)  # [B, N, K]


@POINTCLOUD_SEGMENTATION_NETS.register("pointnet2_seg")
@flat_argument_sets
def pointnet2_seg(
    *, num_classes: int, backbone: PointNet2Backbone, dropout: float = 0.5
) -> nn.Module:
    """PointNet++ segmentation (single-scale grouping): the set-abstraction levels of
    ``pointnet2`` (level ``i`` outputs ``2 width 2^i`` features; global ``16 width``), then
    feature propagation: the global feature mixed into the deepest level, and back up each
    level to ``2 width 2^(i-1)`` features (``2 width`` at the input points), a per-point head."""
    in_channels, width = backbone.in_channels, backbone.width
    levels, pooled = backbone.levels()
    level_widths = [in_channels] + [2 * width * 2**i for i in range(len(levels))]
    deepest = level_widths[-1]
    propagation = [[deepest + pooled[-1], deepest, deepest]]
    features = deepest
    for level in range(len(levels) - 1, -1, -1):  # to the finer level's width; 2 width at 0
        out = level_widths[level] if level else 2 * width
        propagation.append([features + level_widths[level], out, out])
        features = out
    head = [features, features]
    return PointNet2Segmentation(
        num_classes, in_channels, (levels, pooled), propagation, head, dropout
    )
