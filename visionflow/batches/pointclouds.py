"""Point-cloud batches: clouds labelled by class or point by point, and images paired with the
cloud they show.

Point clouds are ``[B, N, 3]`` float32 plus ``lengths`` int64 ``[B]`` (points per cloud; the rest
is padding) for ragged batches, as PyTorch3D's ops take them (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visionflow.batches.core import Batch, DatasetInfo


@dataclass(frozen=True)
class PointCloudDatasetInfo(DatasetInfo):
    """``DatasetInfo`` plus ``num_points``: the points per cloud the datamodule yields (the size
    of a predicted cloud). ``in_channels``: coordinates per point for point-cloud inputs (3), or
    image channels for image inputs."""

    num_points: int = 1024


@dataclass
class PointCloudBatch(Batch):
    """``points`` float32 ``[B, N, C]`` (xyz, then optional features); ``labels`` int64 ``[B]``
    class indices; ``lengths`` int64 ``[B]`` valid points per cloud (None: all N)."""

    points: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor | None = None

    info_type = PointCloudDatasetInfo


@dataclass
class ImageToPointCloudBatch(Batch):
    """``images`` float32 ``[B, C, H, W]``; ``points`` float32 ``[B, N, 3]`` surface samples of
    the object each image shows, in the camera-aligned object frame; ``lengths`` int64 ``[B]``
    (None: all N); ``labels`` int64 ``[B]`` the object's class; ``normals`` float32
    ``[B, N, 3]`` the unit normal of the surface at each point (None: not known)."""

    images: torch.Tensor
    points: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor | None = None
    normals: torch.Tensor | None = None

    info_type = PointCloudDatasetInfo


@dataclass
class PointCloudSegmentationBatch(Batch):
    """``points`` float32 ``[B, N, C]`` (xyz, then optional features); ``point_labels`` int64
    ``[B, N]`` the part (class) of every point, ``IGNORE_INDEX`` where unlabelled; ``lengths``
    int64 ``[B]`` valid points per cloud (None: all N; padded points' labels are not read)."""

    points: torch.Tensor
    point_labels: torch.Tensor
    lengths: torch.Tensor | None = None

    info_type = PointCloudDatasetInfo
