"""Vertex-to-image feature projection (Pixel2Mesh's perceptual pooling; PyTorch3D's
``vert_align``), in the camera frame of the Shapes3D renderer.

The camera is orthographic looking down -z (:mod:`visionflow.datamodules.shapes3d_render`):
a vertex ``(x, y, z)`` projects to the image point ``(x, y)`` in ``[-1, 1]^2``, with x to the
right and y up (row 0 is ``y = 1``); pixel centres lie at ``x = (2 col + 1) / W - 1``. So the
sampling grid is ``(x, -y)`` with ``align_corners=False``; outside the image the features
are 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vert_align(features: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
    """``[B, V, C]``: the bilinearly interpolated ``features [B, C, H, W]`` at the projection of
    each of ``verts [B, V, 3]`` (differentiable in both)."""
    if features.ndim != 4 or verts.ndim != 3 or verts.shape[0] != features.shape[0]:
        raise ValueError(
            f"vert_align: features {tuple(features.shape)} and verts {tuple(verts.shape)} "
            "must be [B, C, H, W] and [B, V, 3]"
        )
    grid = torch.stack([verts[..., 0], -verts[..., 1]], -1)[:, :, None, :]  # [B, V, 1, 2]
    sampled = F.grid_sample(
        features,
        grid.to(features.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B, C, V, 1]
    return sampled[..., 0].transpose(1, 2)
