"""Writing meshes with open3d (imported only when one is written), atomically, and voxel
downsampling of point clouds through open3d: a core module, so tasks export predicted meshes and
datamodules write generated ones and downsample clouds through the same code.

    write_mesh("runs/x/meshes/pred_0.obj", verts, faces)     # format by suffix: .obj .ply .off .stl
    write_point_cloud("runs/x/pointclouds/pred_0.ply", points)    # .ply .pcd .xyz
    points, normals, labels = voxel_downsample(points, 0.05, normals, labels)  # one per voxel
"""

from __future__ import annotations

import numbers
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from visionflow.errors import DataError, SpecError

#: open3d numbers voxels with 32-bit ints: at most this many per side
MAX_VOXELS_PER_SIDE = 2**31 - 1


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
    """``write(name)`` into a fresh folder next to ``path`` under ``path``'s own file name (an
    .obj header names the file it was written to, so the bytes do not depend on a temporary
    name), then rename it to ``path``; a failed write is a DataError naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if not write(str(folder / path.name)):
            raise DataError(f"{path}: open3d could not write the {what}")
        os.replace(folder / path.name, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


class Downsampled(NamedTuple):
    """A voxel-downsampled cloud, one row per occupied voxel: ``points`` float32 ``[M, 3]``,
    ``normals`` float32 ``[M, 3]`` and ``labels`` int64 ``[M]`` (None where not given)."""

    points: np.ndarray
    normals: np.ndarray | None
    labels: np.ndarray | None


def voxel_downsample(
    points: np.ndarray,
    voxel_size: float,
    normals: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Downsampled:
    """``points [N, 3]`` reduced to one point per occupied voxel of side ``voxel_size``: the mean
    of the voxel's points, the mean of their ``normals [N, 3]`` scaled back to unit length (a
    zero mean stays zero), and the most frequent of their ``labels [N]`` (a majority vote; ties
    go to the smallest label). Through open3d's ``PointCloud.voxel_down_sample`` (its traced
    form where labels need each voxel's members), so the grid is open3d's: it starts half a
    voxel below the cloud's smallest coordinates, voxel ``floor((p - min) / voxel_size + 1/2)``
    per axis. Rows come in open3d's order (the same for the same input); M <= N, 0 for an
    empty cloud. Bad arguments raise one line naming them."""
    points, normals, labels = _checked_cloud(points, normals, labels)
    voxel_size = _checked_voxel_size(voxel_size, points)
    if len(points) == 0:
        return Downsampled(points, normals, labels)
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    if normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    if labels is None:
        return _downsampled(cloud.voxel_down_sample(voxel_size), normals, None)
    low, high = points.min(0) - voxel_size / 2, points.max(0) + voxel_size / 2
    reduced, _, members = cloud.voxel_down_sample_and_trace(voxel_size, low, high)
    return _downsampled(reduced, normals, _majority(labels, [np.asarray(m) for m in members]))


def _checked_cloud(
    points: np.ndarray, normals: np.ndarray | None, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The arguments of :func:`voxel_downsample` as float32 / int64 arrays, or a DataError
    naming the one of the wrong shape or with a NaN."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise DataError(f"points: expected an array [N, 3], got shape {points.shape}")
    bad = np.flatnonzero(~np.isfinite(points).all(1))
    if len(bad):
        raise DataError(f"points: point {int(bad[0])} has a NaN or infinite coordinate")
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float32)
        if normals.shape != points.shape:
            raise DataError(
                f"normals: expected shape {points.shape} (as points), got {normals.shape}"
            )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(points),) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"labels: expected integers [{len(points)}] (one per point), got "
                f"{labels.dtype} {labels.shape}"
            )
        labels = labels.astype(np.int64)
    return points, normals, labels


def _checked_voxel_size(voxel_size: float, points: np.ndarray) -> float:
    """``voxel_size`` as a float, or a SpecError: not > 0, or too small for open3d's grid."""
    if not isinstance(voxel_size, numbers.Real) or not 0 < voxel_size < np.inf:
        raise SpecError(f"voxel_size: must be a finite number > 0, got {voxel_size!r}")
    extent = float((points.max(0) - points.min(0)).max()) if len(points) else 0.0
    if (extent + voxel_size) / voxel_size > MAX_VOXELS_PER_SIDE:
        raise SpecError(
            f"voxel_size: {voxel_size} is too small for a cloud {extent:g} wide "
            f"(open3d counts at most {MAX_VOXELS_PER_SIDE} voxels per side)"
        )
    return float(voxel_size)


def _downsampled(reduced, normals: np.ndarray | None, labels: np.ndarray | None) -> Downsampled:
    """:class:`Downsampled` of open3d's reduced cloud, its normals back to unit length."""
    unit_normals = None
    if normals is not None:
        mean = np.asarray(reduced.normals, dtype=np.float32)
        length = np.linalg.norm(mean, axis=1, keepdims=True)
        unit_normals = np.divide(mean, length, out=np.zeros_like(mean), where=length > 0)
    return Downsampled(np.asarray(reduced.points, dtype=np.float32), unit_normals, labels)


def _majority(labels: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    """int64 ``[M]``: the most frequent of ``labels [N]`` among each voxel's ``members``
    (point indices), the smallest on a tie."""
    values, codes = np.unique(labels, return_inverse=True)
    voxel_of = np.repeat(np.arange(len(members)), [len(m) for m in members])
    counts = np.zeros((len(members), len(values)), dtype=np.int64)
    np.add.at(counts, (voxel_of, codes[np.concatenate(members)]), 1)
    return values[counts.argmax(1)]
