"""Occupancy network (Mescheder et al. 2019): an image encoder gives a shape code; a residual
MLP maps each query point, with the code added at every block, to an occupancy logit."""

from __future__ import annotations

import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.families import IMAGE_TO_OCCUPANCY_NETS
from visionflow.tasks.nets.pointnet import image_encoder


class ResidualBlock(nn.Module):
    """``[..., H] -> [..., H]``: ``x + W2 relu(W1 relu(x))``."""

    def __init__(self, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.layers(features)


class OccupancyNetwork(nn.Module):
    """``(images [B, C, H, W], points [B, Q, 3]) -> occupancy logits [B, Q]``."""

    def __init__(self, in_channels: int, width: int, depth: int, hidden: int, blocks: int):
        super().__init__()
        self.encoder, features = image_encoder(in_channels, width, depth)
        self.code = nn.Linear(features * 4, hidden)
        self.lift = nn.Linear(3, hidden)
        self.inject = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(blocks))
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 1))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Shape codes ``[B, hidden]``."""
        return self.code(self.encoder(images))

    def decode(self, code: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, Q]`` of ``points [B, Q, 3]`` given ``code [B, hidden]``."""
        features = self.lift(points)  # [B, Q, hidden]
        for inject, block in zip(self.inject, self.blocks):
            features = block(features + inject(code)[:, None, :])
        return self.out(features)[..., 0]

    def forward(self, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images), points)


@IMAGE_TO_OCCUPANCY_NETS.register("onet")
def onet(
    *, in_channels: int, width: int = 32, depth: int = 4, hidden: int = 128, blocks: int = 3
) -> nn.Module:
    """Image encoder (``depth`` stride-2 blocks from ``width`` channels) -> ``hidden``-d code;
    point decoder of ``blocks`` residual blocks with the code added before each."""
    if min(width, depth, hidden, blocks) < 1:
        raise SpecError(
            "net_args: width, depth, hidden and blocks must be >= 1, "
            f"got {width}, {depth}, {hidden} and {blocks}"
        )
    return OccupancyNetwork(in_channels, width, depth, hidden, blocks)
