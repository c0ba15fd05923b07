"""Edge-length regularizer of a mesh (Pixel2Mesh; PyTorch3D's ``mesh_edge_loss``)."""

from __future__ import annotations

import torch

from visionflow.ops.mesh_edges import batched, mean_per_mesh, unique_edges


def mesh_edge_loss(
    verts: torch.Tensor,
    faces: torch.Tensor,
    target_length: float = 0.0,
    edges: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar: the mean over meshes of the mean over unique edges of
    ``(|v_i - v_j| - target_length)^2``, for ``verts [V, 3]`` or ``[B, V, 3]`` (B meshes of
    one topology, e.g. deformed ico-spheres) and ``faces [F, 3]``. ``edges``: ``unique_edges(faces)``
    when the caller keeps it (finding them reads back from the device)."""
    verts = batched(verts)
    edges = unique_edges(faces) if edges is None else edges  # [E, 2]
    lengths = (verts[:, edges[:, 0]] - verts[:, edges[:, 1]]).norm(dim=-1)  # [B, E]
    return mean_per_mesh((lengths - target_length).square())
