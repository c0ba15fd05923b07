"""Intersection over union of occupancy grids (voxel IoU, as 3D-R2N2 and Mesh R-CNN report it)."""

from __future__ import annotations

import torch


def occupied(grid: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Boolean occupancy of ``grid [...]``: itself if bool, else ``grid > threshold`` (a
    probability or a 0/1 grid)."""
    return grid if grid.dtype == torch.bool else grid > threshold


def voxel_iou(
    predicted: torch.Tensor, target: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """IoU ``[B]`` float32 of the occupied cells of ``predicted [B, D, H, W]`` and
    ``target [B, D, H, W]`` (bool, or values occupied where ``> threshold``). Two empty grids
    agree everywhere: their IoU is 1."""
    if predicted.shape != target.shape or predicted.ndim < 2:
        raise ValueError(
            f"voxel_iou: predicted {tuple(predicted.shape)} and target {tuple(target.shape)} "
            "must be grids [B, D, H, W] of the same shape"
        )
    a = occupied(predicted, threshold).flatten(1)
    b = occupied(target, threshold).flatten(1)
    intersection = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
