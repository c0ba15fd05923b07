"""Point-cloud networks: PointNet (Qi et al. 2017) and an image -> point-cloud generator.

PointNet lifts every point with a shared MLP (1x1 convolutions), optionally after a learned
alignment (T-Net), and max-pools over the points, so the result does not depend on their order;
padded points of a ragged batch (index >= ``lengths``) are left out of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.argument_sets import flat_argument_sets
from visionflow.tasks.nets.families import IMAGE_TO_POINTCLOUD_NETS, POINTCLOUD_NETS


def shared_mlp(widths: list[int]) -> nn.Sequential:
    """1x1 convolutions with batch norm and ReLU: ``[B, widths[0], N] -> [B, widths[-1], N]``."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv1d(width_in, width_out, 1), nn.BatchNorm1d(width_out), nn.ReLU()]
    return nn.Sequential(*layers)


def masked_max(features: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Max over points of ``features [B, F, N]`` -> ``[B, F]``, ignoring padded points."""
    if lengths is not None:
        padding = torch.arange(features.shape[2], device=features.device)[None] >= lengths[:, None]
        features = features.masked_fill(padding[:, None, :], float("-inf"))
    return features.amax(dim=2)


class TNet(nn.Module):
    """Predicts a ``[B, k, k]`` transform of ``[B, k, N]`` features, starting at the identity."""

    def __init__(self, k: int, width: int):
        super().__init__()
        self.k = k
        self.lift = shared_mlp([k, width, width * 2, width * 8])
        self.head = nn.Sequential(
            nn.Linear(width * 8, width * 4), nn.ReLU(), nn.Linear(width * 4, k * k)
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        pooled = masked_max(self.lift(features), lengths)  # [B, 8w]
        offsets = self.head(pooled).view(-1, self.k, self.k)
        return torch.eye(self.k, device=features.device) + offsets


@dataclass(frozen=True)
class PointNetBackbone:
    """The ``net_args`` of the PointNet classifier and segmentation net (an argument set,
    :mod:`~visionflow.tasks.nets.argument_sets`): points of ``in_channels`` channels, a shared
    MLP of ``width``-based widths up to ``feature_dim`` global features, and with ``tnet`` the
    input alignment network."""

    in_channels: int = 3
    width: int = 64
    feature_dim: int = 1024
    tnet: bool = False

    def __post_init__(self) -> None:
        for key in ("width", "feature_dim"):
            if getattr(self, key) < 1:
                raise SpecError(f"net_args.{key}: must be >= 1, got {getattr(self, key)}")

    def alignment(self) -> TNet | None:
        """The input alignment network of ``[B, in_channels, N]`` points, or None."""
        return TNet(self.in_channels, self.width) if self.tnet else None


class PointNet(nn.Module):
    """``points [B, N, C] (+ lengths [B]) -> logits [B, K]``."""

    def __init__(self, backbone: PointNetBackbone, num_classes: int, dropout: float):
        super().__init__()
        width, feature_dim = backbone.width, backbone.feature_dim
        self.align = backbone.alignment()
        self.lift = shared_mlp([backbone.in_channels, width, width, width * 2, feature_dim])
        self.head = nn.Sequential(
            nn.Linear(feature_dim, width * 4),
            nn.BatchNorm1d(width * 4),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width * 4, num_classes),
        )

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        features = points.transpose(1, 2)  # [B, C, N]
        if self.align is not None:
            features = torch.bmm(self.align(features, lengths), features)
        return self.head(masked_max(self.lift(features), lengths))  # [B, K]


@POINTCLOUD_NETS.register("pointnet")
@flat_argument_sets
def pointnet(*, num_classes: int, backbone: PointNetBackbone, dropout: float = 0.3) -> nn.Module:
    """PointNet classifier: shared MLP ``width, width, 2 width, feature_dim``, max pool, MLP head;
    ``tnet`` adds the input alignment network."""
    return PointNet(backbone, num_classes, dropout)


def conv_block(width_in: int, width_out: int) -> nn.Sequential:
    """``[B, I, H, W] -> [B, O, H / 2, W / 2]``: a stride-2 and a stride-1 3x3 convolution,
    each with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(width_in, width_out, 3, stride=2, padding=1),
        nn.BatchNorm2d(width_out),
        nn.ReLU(),
        nn.Conv2d(width_out, width_out, 3, padding=1),
        nn.BatchNorm2d(width_out),
        nn.ReLU(),
    )


def image_encoder(in_channels: int, width: int, depth: int) -> tuple[nn.Sequential, int]:
    """``images [B, C, H, W] -> features [B, 4 F]``: ``depth`` blocks of a stride-2 and a
    stride-1 3x3 convolution (batch norm, ReLU) from ``width`` channels doubling per block
    (F = ``width * 2**(depth - 1)``), then a 2x2 average pool, flattened; and F."""
    layers: list[nn.Module] = []
    channels = in_channels
    for level in range(depth):
        out = width * 2**level
        layers += list(conv_block(channels, out))
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten()), channels


class ImageToPoints(nn.Module):
    """``images [B, C, H, W] -> points [B, P, 3]``: a strided CNN encoder, global pooling, and
    an MLP that emits the coordinates of P points (a point-set generation network, Fan et al.
    2017), ``tanh``-bounded to ``[-scale, scale]``."""

    def __init__(self, in_channels: int, num_points: int, width: int, depth: int, scale: float):
        super().__init__()
        self.encoder, channels = image_encoder(in_channels, width, depth)
        self.decoder = nn.Sequential(
            nn.Linear(channels * 4, 512), nn.ReLU(), nn.Linear(512, num_points * 3)
        )
        self.num_points, self.scale = num_points, scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        coordinates = self.decoder(self.encoder(images))  # [B, 3P]
        return self.scale * torch.tanh(coordinates.view(-1, self.num_points, 3))


@IMAGE_TO_POINTCLOUD_NETS.register("psgn")
def psgn(
    *, in_channels: int, num_points: int, width: int = 32, depth: int = 4, scale: float = 1.0
) -> nn.Module:
    """Point-set generation network: ``depth`` stride-2 conv blocks from ``width`` channels,
    then an MLP to ``num_points`` xyz coordinates in ``[-scale, scale]``."""
    if width < 1 or depth < 1 or scale <= 0:
        raise SpecError(
            f"net_args: need width >= 1, depth >= 1 and scale > 0, got {width}, {depth} and {scale}"
        )
    return ImageToPoints(in_channels, num_points, width, depth, scale)
