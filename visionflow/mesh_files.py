"""Writing meshes with open3d (imported only when one is written), atomically: a core module, so
tasks export predicted meshes and datamodules write generated ones through the same code.

    write_mesh("runs/x/meshes/pred_0.obj", verts, faces)     # format by suffix: .obj .ply .off .stl
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from visionflow.errors import DataError


def write_mesh(path: str | Path, verts: np.ndarray, faces: np.ndarray) -> Path:
    """Write ``(verts [V, 3], faces [F, 3])`` to ``path`` (format by suffix) atomically."""
    import open3d as o3d

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(verts, np.float64)),
        o3d.utility.Vector3iVector(np.asarray(faces, np.int32)),
    )
    handle, temporary = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    os.close(handle)
    if not o3d.io.write_triangle_mesh(
        temporary,
        mesh,
        write_vertex_normals=False,
        write_vertex_colors=False,
        write_triangle_uvs=False,
    ):
        os.unlink(temporary)
        raise DataError(f"{path}: open3d could not write the mesh")
    os.replace(temporary, path)
    return path
