"""Reading and writing meshes and point clouds, with errors that name the file.

    verts, faces = read_mesh("chair.off")        # float32 [V, 3], int64 [F, 3] (triangles)
    points = read_point_cloud("scan.pcd")        # float32 [N, 3]
    write_mesh("pred.obj", verts, faces)         # atomically

OFF and OBJ files are parsed here (ModelNet's OFF files glue the counts to the header,
``OFF490 518 0``, which general readers refuse; open3d drops an OBJ's quads and splits its
vertices by texture coordinate); every other format goes through open3d (.ply .stl .glb .gltf
meshes; .ply .pcd .xyz .pts point clouds), imported only when one is read. A mesh with no
vertices or faces, NaN coordinates, or faces that index past the vertices raises a DataError;
degenerate faces (repeated vertices) are dropped; polygons are fanned into triangles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionflow.errors import DataError
from visionflow.mesh_files import write_mesh

MESH_SUFFIXES = (".off", ".ply", ".obj", ".stl", ".glb", ".gltf")
POINT_SUFFIXES = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
__all__ = ["check_mesh", "read_mesh", "read_point_cloud", "write_mesh"]


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(verts float32 [V, 3], faces int64 [F, 3])`` of the mesh file ``path``."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise DataError(
            f"{path}: not a mesh file this reader knows",
            hint="use one of " + ", ".join(MESH_SUFFIXES),
        )
    if path.suffix.lower() == ".off":
        verts, faces = _read_off(path)
    elif path.suffix.lower() == ".obj":
        verts, faces = _read_obj(path)
    else:
        verts, faces = _read_with_open3d(path)
    return check_mesh(verts, faces, path)


def check_mesh(
    verts: np.ndarray, faces: np.ndarray, path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """The mesh with degenerate faces dropped; DataError naming ``path`` if it is unusable."""
    verts = np.asarray(verts, dtype=np.float32).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(verts) == 0 or len(faces) == 0:
        raise DataError(
            f"{path}: empty mesh ({len(verts)} vertices, {len(faces)} faces)",
            hint="faces must be a face element or f lines (triangle strips are not read)",
        )
    if not np.isfinite(verts).all():
        bad = int(np.flatnonzero(~np.isfinite(verts).all(1))[0])
        raise DataError(f"{path}: vertex {bad} has a NaN or infinite coordinate")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise DataError(
            f"{path}: a face indexes vertex {int(faces.max())} of {len(verts)} (or a negative one)"
        )
    distinct = (
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    )
    if not distinct.any():
        raise DataError(f"{path}: every face is degenerate (repeats a vertex)")
    return verts, faces[distinct]


def read_point_cloud(path: str | Path) -> np.ndarray:
    """Points float32 ``[N, 3]`` of a point-cloud file (open3d); NaN points (an organized scan's
    holes) are dropped; a cloud with none left raises a DataError."""
    path = Path(path)
    if path.suffix.lower() not in POINT_SUFFIXES:
        raise DataError(
            f"{path}: not a point-cloud file this reader knows",
            hint="use one of " + ", ".join(POINT_SUFFIXES),
        )
    _must_exist(path)
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(path), remove_nan_points=True)
    points = np.asarray(cloud.points, dtype=np.float32)
    if len(points) == 0:
        raise DataError(f"{path}: no points could be read (empty or unreadable file)")
    return points


def _must_exist(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such file")


def _read_with_open3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    _must_exist(path)
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(path))
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def _text_lines(path: Path) -> list[str]:
    """The file's lines without comments and blank lines."""
    _must_exist(path)
    try:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable file ({error})") from None
    return [line for line in lines if line]


def _read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and fan-triangulated faces of an OFF file (header and counts may share a line)."""
    lines = _text_lines(path)
    if not lines or not lines[0].startswith("OFF"):
        raise DataError(f"{path}: not an OFF file (the first line must start with OFF)")
    try:
        header = lines[0][3:].split() or lines.pop(1).split()
        vertex_count, face_count = int(header[0]), int(header[1])
        body = lines[1:]
        verts = np.array([body[i].split()[:3] for i in range(vertex_count)], dtype=np.float64)
        faces = []
        for line in body[vertex_count : vertex_count + face_count]:
            fields = line.split()
            faces.append(_fan([int(i) for i in fields[1 : int(fields[0]) + 1]]))
    except (ValueError, IndexError):
        raise DataError(f"{path}: malformed OFF file (counts, vertex or face lines)") from None
    return verts, _stack(faces)


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions (``v``) and fan-triangulated faces (``f a/b/c ...``, negative indices count
    back from the last vertex) of an OBJ file."""
    verts, faces = [], []
    try:
        for line in _text_lines(path):
            fields = line.split()
            if fields[0] == "v":
                verts.append([float(x) for x in fields[1:4]])
            elif fields[0] == "f":
                ring = [int(field.split("/")[0]) for field in fields[1:]]
                faces.append(_fan([i - 1 if i > 0 else len(verts) + i for i in ring]))
    except (ValueError, IndexError):
        raise DataError(
            f"{path}: malformed OBJ line (v needs 3 numbers, f vertex indices)"
        ) from None
    return np.array(verts, dtype=np.float64), _stack(faces)


def _fan(ring: list[int]) -> np.ndarray:
    """Triangles ``[n - 2, 3]`` of the polygon with vertex indices ``ring``."""
    if len(ring) < 3:
        raise ValueError("a face needs three vertices")
    return np.array(
        [[ring[0], ring[k], ring[k + 1]] for k in range(1, len(ring) - 1)], dtype=np.int64
    )


def _stack(faces: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(faces) if faces else np.zeros((0, 3), np.int64)
