"""Writing meshes with open3d (imported only when one is written), atomically: a core module, so
tasks export predicted meshes and datamodules write generated ones through the same code.

    write_mesh("runs/x/meshes/pred_0.obj", verts, faces)     # format by suffix: .obj .ply .off .stl
    write_point_cloud("runs/x/pointclouds/pred_0.ply", points)    # .ply .pcd .xyz
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from visionflow.errors import DataError


def write_mesh(path: str | Path, verts: np.ndarray, faces: np.ndarray) -> Path:
    """Write ``(verts [V, 3], faces [F, 3])`` to ``path`` (format by suffix) atomically."""
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(verts, np.float64)),
        o3d.utility.Vector3iVector(np.asarray(faces, np.int32)),
    )

    def write(name: str) -> bool:
        return o3d.io.write_triangle_mesh(
            name,
            mesh,
            write_vertex_normals=False,
            write_vertex_colors=False,
            write_triangle_uvs=False,
        )

    return _write_atomically(path, "mesh", write)


def write_point_cloud(
    path: str | Path, points: np.ndarray, colors: np.ndarray | None = None
) -> Path:
    """Write ``points [N, 3]`` to ``path`` (format by suffix: .ply .pcd .xyz) atomically, with
    ``colors [N, 3]`` RGB in ``[0, 1]`` when given (.ply, .pcd)."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    if colors is not None:
        cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64))
    return _write_atomically(
        path, "point cloud", lambda name: o3d.io.write_point_cloud(name, cloud)
    )


def _write_atomically(path: str | Path, what: str, write: Callable[[str], bool]) -> Path:
    """``write(temporary name)`` next to ``path``, then rename it to ``path``; a failed write
    is a DataError naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(handle)
    if not write(temporary):
        os.unlink(temporary)
        raise DataError(f"{path}: open3d could not write the {what}")
    os.replace(temporary, path)
    return path
