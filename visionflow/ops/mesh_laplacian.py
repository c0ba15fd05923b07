"""Uniform Laplacian smoothing regularizer of a mesh (PyTorch3D's
``mesh_laplacian_smoothing(method="uniform")``)."""

from __future__ import annotations

import torch

from visionflow.ops.mesh_edges import batched, mean_per_mesh, unique_edges


def mesh_laplacian_smoothing(
    verts: torch.Tensor, faces: torch.Tensor, edges: torch.Tensor | None = None
) -> torch.Tensor:
    """Scalar: the mean over meshes of the mean over vertices of ``|L v|`` (Euclidean norm),
    with the uniform Laplacian ``(L v)_i = mean of v_j over the neighbours j of i, minus v_i``
    (0 for an isolated vertex); ``verts [V, 3]`` or ``[B, V, 3]``, ``faces [F, 3]``; ``edges``:
    ``unique_edges(faces)`` when the caller keeps it (finding them reads back from the device)."""
    verts = batched(verts)
    edges = unique_edges(faces) if edges is None else edges  # [E, 2]
    both = torch.cat([edges, edges.flip(1)])  # [2E, 2]: (i, j) and (j, i)
    count = verts.shape[1]
    degree = torch.zeros(count, dtype=verts.dtype, device=verts.device)
    degree.index_add_(0, both[:, 0], torch.ones(len(both), dtype=verts.dtype, device=verts.device))
    neighbours = torch.zeros_like(verts).index_add_(1, both[:, 0], verts[:, both[:, 1]])
    average = neighbours / degree.clamp(min=1)[None, :, None]
    offsets = torch.where((degree > 0)[None, :, None], average - verts, torch.zeros_like(verts))
    return mean_per_mesh(offsets.norm(dim=-1))
