"""The image -> 3D batches that Shapes3D, ShapeNet and Pix3D build from the same fields.

Fields (``[B, ...]`` tensors): ``images`` uint8 ``[B, S, S, 3]``, ``points`` / ``normals``
float32 ``[B, P, 3]``, ``voxels`` bool ``[B, R, R, R]``, ``labels`` int64 ``[B]``.
"""

from __future__ import annotations

import torch

from visionflow.batches import ImageToPointCloudBatch, ImageToVoxelBatch
from visionflow.errors import SpecError

IMAGE_MEAN, IMAGE_STD = 0.5, 0.25


def normalized_images(fields: dict[str, torch.Tensor]) -> torch.Tensor:
    """The views ``[B, 3, S, S]`` float32, normalized, from the split's uint8 ``[B, S, S, 3]``."""
    images = fields["images"].permute(0, 3, 1, 2).float() / 255
    return (images - IMAGE_MEAN) / IMAGE_STD


def view_points_batch(fields: dict[str, torch.Tensor]) -> ImageToPointCloudBatch:
    """Views with the surface samples (and their normals) they show."""
    return ImageToPointCloudBatch(
        images=normalized_images(fields),
        points=fields["points"],
        normals=fields["normals"],
        labels=fields["labels"],
    )


def view_voxels_batch(fields: dict[str, torch.Tensor]) -> ImageToVoxelBatch:
    """Views with the occupancy grids ``[B, R, R, R]`` (float 0/1) they show."""
    return ImageToVoxelBatch(
        images=normalized_images(fields), voxels=fields["voxels"].float(), labels=fields["labels"]
    )


def refuse_view_transforms(pipelines: dict) -> None:
    """SpecError when ``transforms`` asks to augment the 3D targets of views: a view fixes the
    pose of what it shows (``pipelines``: phase -> ``PointCloudCompose``)."""
    if any(pipeline.ops for pipeline in pipelines.values()):
        raise SpecError(
            "transforms: the 3D targets of views are not augmented (the view fixes the pose)",
            hint="leave transforms unset for the view datamodules",
        )
