"""Geometry ops on point clouds, meshes and voxel grids, one op per module, shapes in docstrings.

    from visionflow.ops import chamfer_distance
    loss, _ = chamfer_distance(predicted [B, N, 3], target [B, M, 3])

Point clouds are ``[B, N, 3]`` plus ``lengths [B]`` for ragged batches (docs/architecture.md).
Every op is tested against a naive reference, with gradients by gradcheck (tests/ops/).
"""

from visionflow.ops.chamfer import chamfer_distance
from visionflow.ops.nearest import nearest_neighbor_index

__all__ = ["chamfer_distance", "nearest_neighbor_index"]
