"""Exact nearest neighbours between batched, ragged point sets, in O(B * (N + M)) memory.

    index = nearest_neighbor_index(x, y, x_lengths, y_lengths, norm=2)   # [B, N] into y

The index is found without gradients (it is piecewise constant in the coordinates); callers
gather the matched points and recompute the distances with autograd, which gives the exact
value and the exact gradient (:mod:`visionflow.ops.chamfer`).

- CPU: one KD-tree per cloud (pykdtree for L2 where installed, else scipy's ``cKDTree``, every
  core), exact for the L1 and L2 norms;
  small problems (``B * N * M`` up to :data:`DENSE_LIMIT`) take the dense path instead, where a
  tree costs more than it saves.
- Other devices: brute force in row chunks sized so that no chunk's distance block exceeds
  :data:`CHUNK_ELEMENTS` entries, never the dense ``N x M`` matrix. The squared L2 block comes
  from one matrix product (about the first point of ``y``), whose rounding can swap two
  neighbours whose squared distances agree to about 1e-7 of the cloud's squared extent
  (float32); the distance is then recomputed from the coordinates.

Padded points (index >= the cloud's length) of ``x`` get index 0 and padded points of ``y`` are
never chosen; a cloud of ``y`` with no points gives index 0 throughout (callers mask it).
"""

from __future__ import annotations

import numpy as np
import torch

#: up to this many pair distances in a batch, one dense distance block beats building trees
DENSE_LIMIT = 1 << 18
#: largest distance block ``[B, rows, M]`` of the chunked brute force (256 MiB in float32)
CHUNK_ELEMENTS = 1 << 26


def nearest_neighbor_index(
    x: torch.Tensor,
    y: torch.Tensor,
    x_lengths: torch.Tensor,
    y_lengths: torch.Tensor,
    norm: int = 2,
) -> torch.Tensor:
    """For every point of ``x [B, N, D]``, the index ``[B, N]`` (int64, on x's device) of its
    nearest point in ``y [B, M, D]`` under the L``norm`` distance, among each cloud's first
    ``x_lengths [B]`` / ``y_lengths [B]`` points."""
    with torch.no_grad():
        batch, rows, _ = x.shape
        if x.device.type == "cpu" and batch * rows * y.shape[1] > DENSE_LIMIT:
            return _kdtree_index(x, y, x_lengths, y_lengths, norm)
        return _chunked_index(x, y, y_lengths, norm)


def _kdtree_index(
    x: torch.Tensor, y: torch.Tensor, x_lengths: torch.Tensor, y_lengths: torch.Tensor, norm: int
) -> torch.Tensor:
    index = torch.zeros(x.shape[:2], dtype=torch.int64)
    for b, (n, m) in enumerate(zip(x_lengths.tolist(), y_lengths.tolist())):
        if n and m:
            found = kdtree_query(y[b, :m].detach().numpy(), x[b, :n].detach().numpy(), norm)
            index[b, :n] = torch.from_numpy(found.astype(np.int64, copy=False))
    return index


def kdtree_query(points: np.ndarray, queries: np.ndarray, norm: int) -> np.ndarray:
    """Index ``[Q]`` of the nearest of ``points [M, D]`` to each of ``queries [Q, D]``: pykdtree
    (OpenMP, float32, about twice as fast here) for L2 where it is installed, else scipy."""
    if norm == 2:
        try:
            from pykdtree.kdtree import KDTree
        except ImportError:
            pass
        else:
            queries = queries.astype(points.dtype, copy=False)
            return KDTree(np.ascontiguousarray(points)).query(np.ascontiguousarray(queries), k=1)[1]
    from scipy.spatial import cKDTree

    tree = cKDTree(points, balanced_tree=False, compact_nodes=False)
    return tree.query(queries, k=1, p=norm, workers=-1)[1]


def _chunked_index(
    x: torch.Tensor, y: torch.Tensor, y_lengths: torch.Tensor, norm: int
) -> torch.Tensor:
    batch, rows, _ = x.shape
    columns = y.shape[1]
    if columns == 0:
        return torch.zeros(batch, rows, dtype=torch.int64, device=x.device)
    padding = torch.arange(columns, device=y.device)[None, :] >= y_lengths[:, None]  # [B, M]
    step = max(1, CHUNK_ELEMENTS // max(1, batch * columns * (x.shape[2] if norm == 1 else 1)))
    chunks = []
    for start in range(0, rows, step):
        distances = pair_distances(x[:, start : start + step], y, norm)  # [B, rows, M]
        distances.masked_fill_(padding[:, None, :], float("inf"))
        chunks.append(distances.argmin(dim=2))
    return (
        torch.cat(chunks, dim=1)
        if chunks
        else torch.zeros(batch, 0, dtype=torch.int64, device=x.device)
    )


def pair_distances(x: torch.Tensor, y: torch.Tensor, norm: int) -> torch.Tensor:
    """``[B, N, M]`` distances between ``x [B, N, D]`` and ``y [B, M, D]``: squared L2 through
    one batched matrix product (as ``torch.cdist`` computes it for large sets), or L1. The L2
    product runs with ``y``'s first point as origin: its rounding then scales with the clouds'
    extent, not with their distance from the origin (which would swamp float32 neighbours)."""
    if norm == 1:
        return (x[:, :, None, :] - y[:, None, :, :]).abs().sum(-1)
    if y.shape[1]:  # the first point of a cloud is real unless the cloud is empty
        x, y = x - y[:, :1], y - y[:, :1]
    squared_norms = x.square().sum(-1)[:, :, None] + y.square().sum(-1)[:, None, :]
    return torch.baddbmm(squared_norms, x, y.transpose(1, 2), alpha=-2).clamp_min_(0)
