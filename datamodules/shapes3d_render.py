"""The primitives of Shapes3D as triangle meshes, and the small software rasterizer that draws them.

    verts, faces = primitive_mesh("torus", rng)                # float32 [V, 3], int64 [F, 3]
    view = render(verts, faces, size=64, color=(200, 80, 40))  # RenderedView: rgb, depth, mask

Meshes fit the unit ball. The camera is orthographic, looking down -z at the origin: pixel
``(row, col)`` sees ``x = (2 col + 1) / size - 1``, ``y = 1 - (2 row + 1) / size``; the nearest
surface (largest z) wins (z-buffer); shading is two-sided Lambert with an ambient term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from visionflow.ops import ico_sphere

PRIMITIVES = ("sphere", "box", "cylinder", "cone", "torus")
SEGMENTS = 24
LIGHT = np.array([0.4, 0.6, 1.0]) / np.linalg.norm([0.4, 0.6, 1.0])
AMBIENT = 0.3


@dataclass(frozen=True)
class RenderedView:
    """``rgb`` uint8 ``[S, S, 3]``, ``depth`` float32 ``[S, S]`` (z of the visible surface, 0 on
    the background), ``mask`` bool ``[S, S]`` (the silhouette)."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def primitive_mesh(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random instance of primitive ``name`` (random proportions), centred, scaled to radius
    0.9: ``(verts float32 [V, 3], faces int64 [F, 3])``."""
    if name == "sphere":
        verts, faces = (t.numpy() for t in ico_sphere(2))
        verts = verts * rng.uniform(0.6, 1.0, size=3)
    elif name == "box":
        verts, faces = box_mesh(rng.uniform(0.4, 1.0, size=3))
    elif name == "torus":
        verts, faces = torus_mesh(1.0, rng.uniform(0.2, 0.45))
    else:
        radius, height = rng.uniform(0.4, 1.0), rng.uniform(0.8, 2.0)
        verts, faces = lathe_mesh(radius, 0.0 if name == "cone" else radius, height)
    verts = verts - (verts.max(0) + verts.min(0)) / 2
    verts = verts * (0.9 / np.linalg.norm(verts, axis=1).max())
    return verts.astype(np.float32), faces.astype(np.int64)


def box_mesh(sides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    quads = np.array(
        [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    )
    faces = quads[:, [0, 1, 2, 0, 2, 3]].reshape(-1, 3)  # each side's two triangles, same winding
    return corners * sides / 2, faces


def grid_faces(rows: int, columns: int, wrap_rows: bool) -> np.ndarray:
    """Two triangles per cell of a ``rows x columns`` vertex grid, columns wrapping around."""
    faces = []
    for r in range(rows if wrap_rows else rows - 1):
        for c in range(columns):
            a, b = r * columns + c, r * columns + (c + 1) % columns
            d, e = ((r + 1) % rows) * columns + c, ((r + 1) % rows) * columns + (c + 1) % columns
            faces += [[a, d, b], [b, d, e]]
    return np.array(faces)


def torus_mesh(major: float, minor: float) -> tuple[np.ndarray, np.ndarray]:
    u = np.linspace(0, 2 * math.pi, SEGMENTS, endpoint=False)
    v = np.linspace(0, 2 * math.pi, SEGMENTS // 2, endpoint=False)
    vv, uu = np.meshgrid(v, u, indexing="ij")  # [R, C]
    ring = major + minor * np.cos(vv)
    verts = np.stack([ring * np.cos(uu), minor * np.sin(vv), ring * np.sin(uu)], -1)
    return verts.reshape(-1, 3), grid_faces(len(v), len(u), wrap_rows=True)


def lathe_mesh(bottom: float, top: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """A cylinder (``top == bottom``) or cone (``top == 0``) about y, with closed caps."""
    u = np.linspace(0, 2 * math.pi, SEGMENTS, endpoint=False)
    rings = [
        np.stack([r * np.cos(u), np.full_like(u, y), r * np.sin(u)], -1)
        for r, y in ((bottom, -height / 2), (top, height / 2))
    ]
    centers = np.array([[0, -height / 2, 0], [0, height / 2, 0]])
    verts = np.concatenate([*rings, centers])
    bottom_center, top_center = 2 * SEGMENTS, 2 * SEGMENTS + 1
    caps = [[bottom_center, c, (c + 1) % SEGMENTS] for c in range(SEGMENTS)]
    caps += [[top_center, SEGMENTS + (c + 1) % SEGMENTS, SEGMENTS + c] for c in range(SEGMENTS)]
    return verts, np.concatenate([grid_faces(2, SEGMENTS, wrap_rows=False), caps])


def rotation_matrix(azimuth: float, elevation: float) -> np.ndarray:
    """``[3, 3]``: turn by ``azimuth`` about y, then tilt by ``elevation`` about x (radians)."""
    ca, sa, ce, se = math.cos(azimuth), math.sin(azimuth), math.cos(elevation), math.sin(elevation)
    about_y = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    about_x = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])
    return (about_x @ about_y).astype(np.float32)


def render(
    verts: np.ndarray,
    faces: np.ndarray,
    size: int,
    color: tuple[int, int, int] | np.ndarray,
    background: tuple[int, int, int] | np.ndarray = (0, 0, 0),
) -> RenderedView:
    """Rasterize ``(verts [V, 3], faces [F, 3])`` into a ``size x size`` view (see module doc):
    each face fills the pixels of its bounding box whose centres lie inside it and nearer than
    what is drawn there."""
    depth = np.full((size, size), -np.inf)
    shade = np.zeros((size, size))
    corners = verts[faces].astype(np.float64)  # [F, 3, 3]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lambert = np.abs(normals @ LIGHT) / np.maximum(np.linalg.norm(normals, axis=1), 1e-12)
    columns = (corners[:, :, 0] + 1) * size / 2 - 0.5  # pixel-centre units
    rows = (1 - corners[:, :, 1]) * size / 2 - 0.5
    for face in range(len(faces)):
        col, row = columns[face], rows[face]
        c0, c1 = max(int(np.ceil(col.min())), 0), min(int(np.floor(col.max())), size - 1)
        r0, r1 = max(int(np.ceil(row.min())), 0), min(int(np.floor(row.max())), size - 1)
        if c0 > c1 or r0 > r1:
            continue
        grid_r, grid_c = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
        weights = _barycentric(grid_c, grid_r, col, row)  # [3, h, w]
        if weights is None:
            continue
        z = np.tensordot(corners[face, :, 2], weights, axes=1)  # [h, w]
        window = depth[r0 : r1 + 1, c0 : c1 + 1]
        drawn = (weights >= 0).all(0) & (z > window)
        window[drawn] = z[drawn]
        shade[r0 : r1 + 1, c0 : c1 + 1][drawn] = lambert[face]
    mask = np.isfinite(depth)
    intensity = AMBIENT + (1 - AMBIENT) * shade
    rgb = np.where(
        mask[..., None],
        intensity[..., None] * np.asarray(color, float),
        np.asarray(background, float),
    )
    return RenderedView(
        rgb=rgb.round().astype(np.uint8),
        depth=np.where(mask, depth, 0).astype(np.float32),
        mask=mask,
    )


def _barycentric(x: np.ndarray, y: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray | None:
    """Barycentric weights ``[3, h, w]`` of the points ``(x, y)`` (each ``[h, w]``) in the
    triangle with corners ``(xs[i], ys[i])``; None for a degenerate triangle."""
    area = (xs[1] - xs[0]) * (ys[2] - ys[0]) - (ys[1] - ys[0]) * (xs[2] - xs[0])
    if abs(area) < 1e-12:
        return None
    weights = [
        ((xs[k] - xs[j]) * (y - ys[j]) - (ys[k] - ys[j]) * (x - xs[j])) / area
        for j, k in ((1, 2), (2, 0), (0, 1))
    ]
    return np.stack(weights)
