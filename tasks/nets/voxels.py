"""Voxel networks: VoxNet (Maturana and Scherer 2015) classifies occupancy grids; an image
encoder with a 3D transposed-convolution decoder (3D-R2N2's decoder without the recurrence)
predicts them from a view.
"""

from __future__ import annotations

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.families import IMAGE_TO_VOXEL_NETS, VOXEL_NETS
from visionflow.tasks.nets.pointnet import image_encoder

#: cells per side of the coarsest grid the image -> voxel decoder starts from
SEED_RESOLUTION = 4


def voxnet_feature_side(resolution: int) -> int:
    """Side of VoxNet's last feature grid: 5^3 stride-2 conv, 3^3 conv, 2^3 max pool."""
    return ((resolution - 5) // 2 + 1 - 2) // 2


@VOXEL_NETS.register("voxnet")
def voxnet(
    *, num_classes: int, resolution: int, width: int = 32, hidden: int = 128, dropout: float = 0.3
) -> nn.Module:
    """VoxNet: ``voxels [B, 1, R, R, R] -> logits [B, K]``; two 3D convolutions of ``width``
    channels (5^3 stride 2, then 3^3; batch norm), a 2^3 max pool, a ``hidden``-unit layer."""
    side = voxnet_feature_side(resolution)
    if side < 1:
        raise SpecError(f"resolution: voxnet needs grids of at least 11 cells, got {resolution}")
    if width < 1 or hidden < 1 or not 0 <= dropout < 1:
        raise SpecError(
            "net_args: need width >= 1, hidden >= 1 and dropout in [0, 1), "
            f"got {width}, {hidden} and {dropout}"
        )
    return nn.Sequential(
        nn.Conv3d(1, width, 5, stride=2),
        nn.BatchNorm3d(width),
        nn.LeakyReLU(0.1),
        nn.Dropout(dropout),
        nn.Conv3d(width, width, 3),
        nn.BatchNorm3d(width),
        nn.LeakyReLU(0.1),
        nn.MaxPool3d(2),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(width * side**3, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


class ImageToVoxels(nn.Module):
    """``images [B, C, H, W] -> occupancy logits [B, R, R, R]``: the strided CNN encoder of
    :func:`~visionflow.tasks.nets.pointnet.image_encoder`, a linear map to a ``4^3`` grid of
    ``channels`` features, then transposed 3D convolutions doubling the grid up to ``R``."""

    def __init__(self, in_channels: int, resolution: int, width: int, depth: int, channels: int):
        super().__init__()
        self.encoder, features = image_encoder(in_channels, width, depth)
        self.seed = nn.Linear(features * 4, channels * SEED_RESOLUTION**3)
        layers: list[nn.Module] = []
        side, current = SEED_RESOLUTION, channels
        while side < resolution:
            out = max(current // 2, 8)
            layers += [
                nn.ConvTranspose3d(current, out, 4, stride=2, padding=1),
                nn.BatchNorm3d(out),
                nn.ReLU(),
            ]
            side, current = side * 2, out
        self.decoder = nn.Sequential(*layers, nn.Conv3d(current, 1, 3, padding=1))
        self.channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        seed = torch.relu(self.seed(self.encoder(images)))
        grid = seed.view(-1, self.channels, *(SEED_RESOLUTION,) * 3)
        return self.decoder(grid)[:, 0]


@IMAGE_TO_VOXEL_NETS.register("voxel_decoder")
def voxel_decoder(
    *, in_channels: int, resolution: int, width: int = 32, depth: int = 4, channels: int = 64
) -> nn.Module:
    """Image encoder (``depth`` stride-2 blocks from ``width`` channels) -> ``channels`` x 4^3
    grid -> transposed 3D convolutions up to ``resolution`` (4 times a power of two)."""
    if resolution < SEED_RESOLUTION or resolution & (resolution - 1):
        raise SpecError(
            f"resolution: voxel_decoder doubles a 4^3 grid, so it needs a power of two >= 4, "
            f"got {resolution}"
        )
    if width < 1 or depth < 1 or channels < 1:
        raise SpecError(
            f"net_args: need width, depth and channels >= 1, got {width}, {depth} and {channels}"
        )
    return ImageToVoxels(in_channels, resolution, width, depth, channels)
