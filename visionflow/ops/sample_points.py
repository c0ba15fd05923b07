"""Area-weighted point sampling from a triangle mesh surface, with the faces' normals."""

from __future__ import annotations

import torch


def sample_points_from_mesh(
    verts: torch.Tensor,
    faces: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(points [S, 3], normals [S, 3])``: ``num_samples`` points uniform on the surface of
    ``(verts [V, 3], faces [F, 3])`` (a face is picked with probability proportional to its area,
    then a point uniform inside it) and the unit normal of the face each lies on. Differentiable
    in ``verts`` (the face choice is not)."""
    corners = verts[faces]  # [F, 3, 3]
    cross = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    areas = cross.norm(dim=1)  # [F] (x2)
    if faces.shape[0] == 0 or not bool(areas.sum() > 0):
        raise ValueError("mesh: has no face of non-zero area to sample points from")
    chosen = torch.multinomial(
        areas.detach(), num_samples, replacement=True, generator=generator
    )  # [S]
    u, v = torch.rand(
        2, num_samples, 1, generator=generator, dtype=verts.dtype, device=verts.device
    )
    root = u.sqrt()  # uniform barycentrics (Osada et al.)
    a, b, c = corners[chosen].unbind(1)  # [S, 3] each
    points = (1 - root) * a + root * (1 - v) * b + root * v * c
    normals = torch.nn.functional.normalize(cross[chosen], dim=1, eps=1e-12)
    return points, normals
