"""Implicit-surface batches: images with occupancy-labelled query points and surface samples.

Points are in the camera frame of the image, inside the cube ``[-1, 1]^3`` of the voxel grids
(:mod:`visionflow.batches.voxels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visionflow.batches.core import Batch


@dataclass
class ImageToOccupancyBatch(Batch):
    """``images`` float32 ``[B, C, H, W]``; ``queries`` float32 ``[B, Q, 3]`` points in the
    cube; ``occupancy`` float32 ``[B, Q]`` (1 inside the object); ``surface`` float32
    ``[B, P, 3]`` samples of the object's surface (for Chamfer / F-score of a meshed
    prediction); ``labels`` int64 ``[B]`` the object's class.

    ``images, occupancy = batch`` unpacks it."""

    images: torch.Tensor
    queries: torch.Tensor
    occupancy: torch.Tensor
    surface: torch.Tensor
    labels: torch.Tensor

    unpacked = ("images", "occupancy")
