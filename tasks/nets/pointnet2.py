"""PointNet++ (Qi et al. 2017): hierarchical set abstraction for point-cloud classification.

Each set-abstraction level picks ``samples`` centroids by farthest point sampling, groups the
first ``neighbours`` points within ``radius`` of each (ball query), and runs a mini-PointNet on
the group in centroid-relative coordinates (plus the previous level's features): shared 1x1
convolutions, then a max over the group. A last level pools every remaining centroid into one
feature vector (:class:`SetAbstractionEncoder`, also the encoder of ``pointnet2_seg``), which
an MLP head classifies. Padded points of a ragged batch (index >= ``lengths``) are never
sampled, grouped or pooled; nothing is read back from the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.ops import ball_query, sample_farthest_points
from visionflow.tasks.nets.argument_sets import flat_argument_sets
from visionflow.tasks.nets.families import POINTCLOUD_NETS
from visionflow.tasks.nets.pointnet import masked_max, shared_mlp


def shared_mlp_2d(widths: list[int]) -> nn.Sequential:
    """1x1 2D convolutions with batch norm and ReLU: ``[B, w0, S, K] -> [B, w_last, S, K]``."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(width_in, width_out, 1), nn.BatchNorm2d(width_out), nn.ReLU()]
    return nn.Sequential(*layers)


class SetAbstraction(nn.Module):
    """``(xyz [B, N, 3], features [B, C, N] | None, lengths [B]) -> (centroids [B, S, 3],
    features [B, widths[-1], S], centroid lengths [B])``; ``widths[0]`` is ``C + 3``."""

    def __init__(self, samples: int, radius: float, neighbours: int, widths: list[int]):
        super().__init__()
        self.samples, self.radius, self.neighbours = samples, radius, neighbours
        self.mlp = shared_mlp_2d(widths)

    def forward(
        self, xyz: torch.Tensor, features: torch.Tensor | None, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        centroids, index = sample_farthest_points(xyz, lengths, K=self.samples)  # [B, S, 3]
        kept = index >= 0  # [B, S]
        centroid_lengths = kept.sum(1)
        _, neighbour, grouped = ball_query(
            centroids, xyz, centroid_lengths, lengths, K=self.neighbours, radius=self.radius
        )  # [B, S, K], [B, S, K, 3]
        local = grouped - centroids[:, :, None]
        if features is not None:
            flat = neighbour.clamp(min=0).flatten(1)  # [B, S K]
            gathered = features.gather(2, flat[:, None].expand(-1, features.shape[1], -1))
            local = torch.cat(
                [
                    local,
                    gathered.view(*features.shape[:2], *neighbour.shape[1:]).permute(0, 2, 3, 1),
                ],
                dim=-1,
            )
        lifted = self.mlp(local.permute(0, 3, 1, 2))  # [B, W, S, K]
        lifted = lifted.masked_fill((neighbour < 0)[:, None], float("-inf")).amax(3)
        return centroids, torch.where(kept[:, None], lifted, 0.0), centroid_lengths


class SetAbstractionEncoder(nn.Module):
    """The set-abstraction levels and the global pooling of PointNet++: ``points [B, N, C]
    (+ lengths [B]) -> (hierarchy, global features [B, pooled[-1]])``, ``hierarchy`` the
    ``(xyz [B, S_i, 3], features [B, F_i, S_i] | None, lengths [B])`` of the input (``i = 0``:
    ``xyz = points[..., :3]``, features the other ``C - 3`` channels) and of every level."""

    def __init__(self, in_channels: int, levels: list[SetAbstraction], pooled: list[int]):
        super().__init__()
        self.extra_channels = in_channels - 3
        self.levels = nn.ModuleList(levels)
        self.pool = shared_mlp(pooled)

    def encode(
        self, points: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]], torch.Tensor]:
        xyz = points[..., :3]
        features = points[..., 3:].transpose(1, 2) if self.extra_channels else None
        if lengths is None:
            lengths = torch.full((len(points),), points.shape[1], device=points.device)
        hierarchy = [(xyz, features, lengths)]
        for level in self.levels:
            xyz, features, lengths = level(xyz, features, lengths)
            hierarchy.append((xyz, features, lengths))
        pooled = masked_max(self.pool(torch.cat([xyz.transpose(1, 2), features], 1)), lengths)
        return hierarchy, pooled


class PointNet2(SetAbstractionEncoder):
    """``points [B, N, C] (+ lengths [B]) -> logits [B, K]``: an MLP head on the global
    features of :class:`SetAbstractionEncoder`."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        levels: list[SetAbstraction],
        pooled: list[int],
        dropout: float,
    ):
        super().__init__(in_channels, levels, pooled)
        self.head = nn.Sequential(
            nn.Linear(pooled[-1], pooled[-1] // 4),
            nn.BatchNorm1d(pooled[-1] // 4),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(pooled[-1] // 4, num_classes),
        )

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encode(points, lengths)[1])


@dataclass(frozen=True)
class PointNet2Backbone:
    """The ``net_args`` of the PointNet++ encoder (classifier and segmentation net; an argument
    set, :mod:`~visionflow.tasks.nets.argument_sets`): points of ``in_channels >= 3`` channels
    (xyz first), one set-abstraction level per entry of ``samples``/``radii``/``neighbours``,
    level ``i`` with MLP widths ``w, w, 2w`` for ``w = width * 2^i``."""

    in_channels: int = 3
    samples: tuple[int, ...] = (512, 128)
    radii: tuple[float, ...] = (0.2, 0.4)
    neighbours: tuple[int, ...] = (32, 64)
    width: int = 64

    def __post_init__(self) -> None:
        samples, radii, neighbours = list(self.samples), list(self.radii), list(self.neighbours)
        if not len(samples) == len(radii) == len(neighbours) >= 1:
            raise SpecError(
                "net_args: samples, radii and neighbours need one entry per level (at least "
                f"one), got {samples}, {radii} and {neighbours}"
            )
        if self.in_channels < 3:
            raise SpecError(f"in_channels: must be >= 3 (xyz first), got {self.in_channels}")
        for key, bad, rule in (
            ("width", self.width < 1, ">= 1"),
            ("samples", min(samples) < 1, "each >= 1"),
            ("neighbours", min(neighbours) < 1, "each >= 1"),
            ("radii", min(radii) <= 0, "each > 0"),
        ):
            if bad:
                raise SpecError(f"net_args.{key}: must be {rule}, got {getattr(self, key)}")

    def levels(self) -> tuple[list[SetAbstraction], list[int]]:
        """The set-abstraction levels and the pooling MLP's widths (to ``16 width``)."""
        levels, channels = [], self.in_channels - 3
        groups = zip(self.samples, self.radii, self.neighbours)
        for index, (count, radius, group) in enumerate(groups):
            level_width = self.width * 2**index
            widths = [channels + 3, level_width, level_width, 2 * level_width]
            levels.append(SetAbstraction(count, radius, group, widths))
            channels = widths[-1]
        return levels, [channels + 3, 4 * self.width, 16 * self.width]


@POINTCLOUD_NETS.register("pointnet2")
@flat_argument_sets
def pointnet2(*, num_classes: int, backbone: PointNet2Backbone, dropout: float = 0.4) -> nn.Module:
    """PointNet++ classifier (single-scale grouping): one set-abstraction level per entry of
    ``samples``/``radii``/``neighbours``, level ``i`` with MLP widths ``w, w, 2w`` for
    ``w = width * 2^i``, then a pooling MLP to ``16 width`` features and a head."""
    levels, pooled = backbone.levels()
    return PointNet2(num_classes, backbone.in_channels, levels, pooled, dropout)
