"""Unit ico-sphere meshes: the template Pixel2Mesh deforms and the sphere primitive of Shapes3D."""

from __future__ import annotations

import math

import torch


def ico_sphere(level: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(verts float32 [V, 3], faces int64 [F, 3])`` of an icosahedron subdivided ``level`` times
    (each face into four) with vertices on the unit sphere: V = 10 * 4**level + 2,
    F = 20 * 4**level; faces wind counter-clockwise seen from outside."""
    if level < 0:
        raise ValueError(f"level: must be >= 0, got {level}")
    verts, faces = _icosahedron()
    for _ in range(level):
        verts, faces = subdivide(verts, faces)
        verts = torch.nn.functional.normalize(verts, dim=1)
    return verts, faces


def subdivide(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split every triangle of ``(verts [V, 3], faces [F, 3])`` into four at its edge midpoints:
    ``(verts [V + E, 3], faces [4F, 3])``; shared edges share their midpoint."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # [3F, 2]
    unique, inverse = torch.unique(edges.sort(dim=1).values, dim=0, return_inverse=True)
    midpoints = (verts[unique[:, 0]] + verts[unique[:, 1]]) / 2  # [E, 3]
    middle = (inverse + len(verts)).view(3, -1).T  # [F, 3]
    a, b, c = faces.unbind(1)
    ab, bc, ca = middle.unbind(1)
    new_faces = torch.cat(
        [torch.stack(f, dim=1) for f in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
    )
    return torch.cat([verts, midpoints]), new_faces


def _icosahedron() -> tuple[torch.Tensor, torch.Tensor]:
    phi = (1 + math.sqrt(5)) / 2
    verts = torch.tensor(
        [
            [-1, phi, 0],
            [1, phi, 0],
            [-1, -phi, 0],
            [1, -phi, 0],
            [0, -1, phi],
            [0, 1, phi],
            [0, -1, -phi],
            [0, 1, -phi],
            [phi, 0, -1],
            [phi, 0, 1],
            [-phi, 0, -1],
            [-phi, 0, 1],
        ],
        dtype=torch.float32,
    )
    faces = torch.tensor(
        [
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ]
    )
    return torch.nn.functional.normalize(verts, dim=1), faces
