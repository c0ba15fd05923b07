"""The edges of a triangle mesh, each once: what the mesh regularizers share."""

from __future__ import annotations

import torch


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """int64 ``[E, 2]``: every edge of ``faces [F, 3]`` once, as ``(low, high)`` vertex indices."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(edges.sort(dim=1).values, dim=0)


def batched(verts: torch.Tensor) -> torch.Tensor:
    """``verts`` as ``[B, V, 3]`` (a single mesh's ``[V, 3]`` gets B = 1)."""
    if verts.ndim == 2:
        verts = verts[None]
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts: expected [V, 3] or [B, V, 3], got {tuple(verts.shape)}")
    return verts


def mean_per_mesh(values: torch.Tensor) -> torch.Tensor:
    """Scalar: the mean over meshes of the mean of each mesh's terms ``values [B, K]`` (one per
    edge, vertex ...); a mesh without terms (K = 0) adds 0, not NaN, as in PyTorch3D, which
    weights each term by 1 / K."""
    return (values.sum(1) / max(values.shape[1], 1)).mean()
