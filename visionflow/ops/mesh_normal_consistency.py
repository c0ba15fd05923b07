"""Normal-consistency regularizer of a mesh, as PyTorch3D's ``mesh_normal_consistency``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionflow.ops.mesh_edges import batched


def mesh_normal_consistency(
    verts: torch.Tensor,
    faces: torch.Tensor,
    pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Scalar: the mean over meshes of the mean over pairs of faces sharing an edge of
    ``1 - cos(n0, n1)``, for ``verts [V, 3]`` or ``[B, V, 3]`` and ``faces [F, 3]``. For the
    edge ``(v0, v1)`` with opposite vertices ``a`` and ``b``: ``n0 = (v1 - v0) x (a - v0)``,
    ``n1 = -(v1 - v0) x (b - v0)``, so a flat fold-free surface scores 0 whatever the winding
    of its faces. A mesh with no shared edge scores 0. ``pairs``: ``adjacent_pairs(faces)`` when
    the caller keeps them (finding them reads back from the device)."""
    verts = batched(verts)
    edge, first, second = adjacent_pairs(faces) if pairs is None else pairs  # [P, 2], [P], [P]
    if len(edge) == 0:
        return verts.sum() * 0
    v0, v1 = verts[:, edge[:, 0]], verts[:, edge[:, 1]]  # [B, P, 3]
    n0 = torch.linalg.cross(v1 - v0, verts[:, first] - v0)
    n1 = -torch.linalg.cross(v1 - v0, verts[:, second] - v0)
    cosine = F.cosine_similarity(n0, n1, dim=-1, eps=1e-6)
    return (1 - cosine).mean(1).mean()


def adjacent_pairs(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pair of faces sharing an edge (an edge in k faces gives k (k - 1) / 2 pairs):
    the edge ``[P, 2]`` (sorted vertex indices) and each face's vertex opposite it ``[P]``."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    opposite = torch.cat([faces[:, 2], faces[:, 0], faces[:, 1]])  # [3F]
    _, edge_id = torch.unique(edges, dim=0, return_inverse=True)
    order = torch.argsort(edge_id, stable=True)  # the faces of one edge become consecutive
    edge_id, edges, opposite = edge_id[order], edges[order], opposite[order]
    most = int(torch.bincount(edge_id).max()) if len(edge_id) else 0
    found = [[], [], []]
    for gap in range(1, most):
        same = edge_id[gap:] == edge_id[:-gap]
        for bucket, value in zip(found, (edges[gap:], opposite[:-gap], opposite[gap:])):
            bucket.append(value[same])
    if not found[0]:
        return faces.new_zeros(0, 2), faces.new_zeros(0), faces.new_zeros(0)
    return tuple(torch.cat(bucket) for bucket in found)
