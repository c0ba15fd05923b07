"""Whether a triangle mesh is closed, the condition under which an inside test by ray parity
(:func:`visionflow.ops.points_inside_mesh`, ``voxelize_mesh(fill=True)``) is well defined."""

from __future__ import annotations

import torch


def open_edge_count(verts: torch.Tensor, faces: torch.Tensor) -> int:
    """How many edges of ``(verts [V, 3], faces [F, 3])`` border an odd number of faces, after
    vertices at identical positions are merged (OBJ files split them by texture coordinate).
    0 means closed: every ray from outside crosses the surface an even number of times, so the
    parity of crossings tells inside from outside (non-manifold edges with 4, 6 ... faces
    included)."""
    _, welded = torch.unique(verts.detach(), dim=0, return_inverse=True)
    corners = welded[faces]  # [F, 3]
    edges = torch.cat([corners[:, [0, 1]], corners[:, [1, 2]], corners[:, [2, 0]]])
    edges = edges.sort(dim=1).values
    edges = edges[edges[:, 0] != edges[:, 1]]  # collapsed by the merge
    _, counts = torch.unique(edges, dim=0, return_counts=True)
    return int((counts % 2 == 1).sum())
