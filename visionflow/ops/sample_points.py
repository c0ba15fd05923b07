"""Area-weighted point sampling from triangle mesh surfaces, with the faces' normals."""

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
    in ``verts`` (the face choice is not). A mesh without a face of non-zero area is a
    ValueError (checking it reads the areas' sum back from the device)."""
    corners = verts[faces]  # [F, 3, 3]
    areas = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    if faces.shape[0] == 0 or not bool(areas.norm(dim=1).sum() > 0):
        raise ValueError("mesh: has no face of non-zero area to sample points from")
    points, normals = sample_points_from_meshes(verts[None], faces, num_samples, generator)
    return points[0], normals[0]


def sample_points_from_meshes(
    verts: torch.Tensor,
    faces: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(points [B, S, 3], normals [B, S, 3])``: :func:`sample_points_from_mesh` for ``B``
    meshes of one topology ``(verts [B, V, 3], faces [F, 3])`` at once, reading nothing back
    from the device, so it does not check the meshes: one whose faces all have zero area
    (``F >= 1``) gets its faces picked uniformly, and zero normals."""
    corners = verts[:, faces]  # [B, F, 3, 3]
    cross = torch.linalg.cross(
        corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    )
    areas = cross.detach().norm(dim=2)  # [B, F] (x2)
    flat = (areas.sum(1, keepdim=True) > 0).logical_not()  # [B, 1]
    weights = torch.where(flat, torch.ones_like(areas), areas)
    chosen = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
    u, v = torch.rand(
        2, len(verts), num_samples, 1, generator=generator, dtype=verts.dtype, device=verts.device
    )
    root = u.sqrt()  # uniform barycentrics (Osada et al.)
    picked = corners.gather(1, chosen[:, :, None, None].expand(-1, -1, 3, 3))  # [B, S, 3, 3]
    a, b, c = picked.unbind(2)  # [B, S, 3] each
    points = (1 - root) * a + root * (1 - v) * b + root * v * c
    face_normals = cross.gather(1, chosen[:, :, None].expand(-1, -1, 3))
    return points, torch.nn.functional.normalize(face_normals, dim=2, eps=1e-12)
