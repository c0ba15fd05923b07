"""Geometry ops on point clouds, meshes and voxel grids, one op per module, shapes in docstrings.

    from visionflow.ops import chamfer_distance
    loss, _ = chamfer_distance(predicted [B, N, 3], target [B, M, 3])

Point clouds are ``[B, N, 3]`` plus ``lengths [B]`` for ragged batches (docs/architecture.md).
Every op is tested against a naive reference, with gradients by gradcheck (tests/ops/).
"""

from visionflow.ops.ball_query import ball_query
from visionflow.ops.chamfer import chamfer_distance
from visionflow.ops.closed_mesh import open_edge_count
from visionflow.ops.cubify import cubify
from visionflow.ops.farthest_point_sampling import sample_farthest_points
from visionflow.ops.fscore import f_score, nearest_distances
from visionflow.ops.ico_sphere import ico_sphere, subdivide
from visionflow.ops.inside_mesh import points_inside_mesh
from visionflow.ops.marching_cubes import mesh_from_grid
from visionflow.ops.mesh_edge_loss import mesh_edge_loss
from visionflow.ops.mesh_laplacian import mesh_laplacian_smoothing
from visionflow.ops.mesh_normal_consistency import mesh_normal_consistency
from visionflow.ops.nearest import nearest_neighbor_index
from visionflow.ops.sample_points import sample_points_from_mesh, sample_points_from_meshes
from visionflow.ops.vert_align import vert_align
from visionflow.ops.voxel_iou import voxel_iou
from visionflow.ops.voxelize import voxelize_mesh, voxelize_points

__all__ = [
    "ball_query",
    "chamfer_distance",
    "cubify",
    "f_score",
    "ico_sphere",
    "mesh_edge_loss",
    "mesh_from_grid",
    "mesh_laplacian_smoothing",
    "mesh_normal_consistency",
    "nearest_distances",
    "nearest_neighbor_index",
    "open_edge_count",
    "points_inside_mesh",
    "sample_farthest_points",
    "sample_points_from_mesh",
    "sample_points_from_meshes",
    "subdivide",
    "vert_align",
    "voxel_iou",
    "voxelize_mesh",
    "voxelize_points",
]
