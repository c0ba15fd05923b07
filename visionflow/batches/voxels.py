"""Voxel batches: occupancy grids labelled by class, and images paired with the grid they show.

A grid is ``[R, R, R]`` in PyTorch3D's ``[D, H, W]`` order (depth is z, rows y, columns x)
over the cube ``[-1, 1]^3`` (:mod:`visionflow.ops.voxelize`), 1 where a cell is occupied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visionflow.batches.core import Batch, DatasetInfo


@dataclass(frozen=True)
class VoxelDatasetInfo(DatasetInfo):
    """``DatasetInfo`` plus ``resolution``: cells per side of the grids the datamodule yields.
    ``in_channels``: 1 for grid inputs, image channels for image inputs."""

    resolution: int = 32


@dataclass
class VoxelBatch(Batch):
    """``voxels`` float32 ``[B, 1, R, R, R]`` (0/1 occupancy, one input channel); ``labels``
    int64 ``[B]`` class indices."""

    voxels: torch.Tensor
    labels: torch.Tensor

    info_type = VoxelDatasetInfo


@dataclass
class ImageToVoxelBatch(Batch):
    """``images`` float32 ``[B, C, H, W]``; ``voxels`` float32 ``[B, R, R, R]`` (0/1, the solid
    object the image shows, in the camera frame); ``labels`` int64 ``[B]`` the object's class."""

    images: torch.Tensor
    voxels: torch.Tensor
    labels: torch.Tensor

    info_type = VoxelDatasetInfo
