"""Voxelization of point clouds and triangle meshes into occupancy grids.

    grid = voxelize_points(points [B, N, 3], resolution=32)             # bool [B, 32, 32, 32]
    grid = voxelize_mesh(verts [V, 3], faces [F, 3], 32, fill=True)     # bool [32, 32, 32]

A grid ``[D, H, W]`` covers the cube ``bounds = (lo, hi)`` on every axis with cells of side
``s = (hi - lo) / R``: cell ``[d, h, w]`` spans ``x in [lo + w s, lo + (w + 1) s]``, ``y`` by
``h`` and ``z`` by ``d`` (PyTorch3D's ``[D, H, W]`` order: depth is z). :func:`cubify` maps a
grid back to a mesh in the same frame.

Mesh surface cells are those whose closed box meets a triangle (exact triangle-box overlap by
the separating axis test, Akenine-Moeller 2001); ``fill=True`` adds every cell whose centre
lies inside the mesh (ray parity, :func:`visionflow.ops.inside_mesh.points_inside_mesh`; meant
for closed meshes).
"""

from __future__ import annotations

import torch

from visionflow.ops.inside_mesh import crossings_above

Bounds = tuple[float, float]


def voxelize_points(
    points: torch.Tensor,
    resolution: int,
    lengths: torch.Tensor | None = None,
    bounds: Bounds = (-1.0, 1.0),
) -> torch.Tensor:
    """Occupancy ``bool [B, R, R, R]`` of the cells holding a point of ``points [B, N, 3]``
    (padding past ``lengths [B]`` and points outside ``bounds`` are left out; a point on the
    upper bound falls in the last cell)."""
    batch, count = points.shape[:2]
    index = cell_index(points, resolution, bounds)  # [B, N, 3] as (x, y, z)
    keep = ((index >= 0) & (index < resolution)).all(-1)
    if lengths is not None:
        keep &= torch.arange(count, device=points.device)[None] < lengths[:, None]
    x, y, z = index.unbind(-1)
    flat = (torch.arange(batch, device=points.device)[:, None] * resolution + z) * resolution + y
    flat = flat * resolution + x  # [B, N]
    grid = torch.zeros(batch * resolution**3, dtype=torch.bool, device=points.device)
    grid[flat[keep]] = True
    return grid.view(batch, resolution, resolution, resolution)


def cell_index(points: torch.Tensor, resolution: int, bounds: Bounds) -> torch.Tensor:
    """int64 ``[..., 3]`` cell of each point ``[..., 3]`` (x, y, z order; may be out of range)."""
    lo, hi = bounds
    if not hi > lo or resolution < 1:
        raise ValueError(
            f"bounds/resolution: need lo < hi and resolution >= 1, got {bounds}, {resolution}"
        )
    index = torch.floor((points - lo) * (resolution / (hi - lo))).long()
    # the upper bound, and points just below it whose product rounds up to R: the last cell
    return torch.where(points <= hi, index.clamp(max=resolution - 1), index)


def cell_centers(
    resolution: int, bounds: Bounds = (-1.0, 1.0), dtype=torch.float64
) -> torch.Tensor:
    """Centre coordinate of each cell along one axis ``[R]``."""
    lo, hi = bounds
    return lo + (torch.arange(resolution, dtype=dtype) + 0.5) * ((hi - lo) / resolution)


def voxelize_mesh(
    verts: torch.Tensor,
    faces: torch.Tensor,
    resolution: int,
    fill: bool = True,
    bounds: Bounds = (-1.0, 1.0),
) -> torch.Tensor:
    """Occupancy ``bool [R, R, R]`` of the mesh ``(verts [V, 3], faces [F, 3])``: its surface
    cells, plus with ``fill`` the cells whose centre is inside it (see the module docstring)."""
    verts = verts.detach().to(torch.float64)
    grid = surface_cells(verts, faces, resolution, bounds)
    if fill:
        centers = cell_centers(resolution, bounds)
        columns = torch.stack(torch.meshgrid(centers, centers, indexing="xy"), -1)  # [H, W, 2]
        above = crossings_above(verts, faces, columns.reshape(-1, 2), centers)  # [H*W, D]
        inside = (above % 2 == 1).T.reshape(resolution, resolution, resolution)  # [D, H, W]
        grid |= inside.to(grid.device)
    return grid


def surface_cells(
    verts: torch.Tensor, faces: torch.Tensor, resolution: int, bounds: Bounds
) -> torch.Tensor:
    """``bool [R, R, R]``: cells whose closed box meets a triangle of the mesh."""
    lo, hi = bounds
    size = (hi - lo) / resolution
    corners = verts[faces]  # [F, 3, 3]
    first = cell_index(corners.amin(1), resolution, bounds).clamp(0, resolution - 1)  # [F, 3]
    last = cell_index(corners.amax(1), resolution, bounds).clamp(0, resolution - 1)
    inside_bounds = ((corners.amax(1) >= lo) & (corners.amin(1) <= hi)).all(1)
    face, cells = candidate_cells(first[inside_bounds], last[inside_bounds])
    corners = corners[inside_bounds][face]  # [K, 3, 3]
    centers = lo + (cells.to(verts.dtype) + 0.5) * size  # [K, 3] (x, y, z)
    hit = triangle_box_overlap(corners - centers[:, None, :], size / 2)
    grid = torch.zeros(resolution**3, dtype=torch.bool)
    x, y, z = cells[hit].unbind(1)
    grid[(z * resolution + y) * resolution + x] = True
    return grid.view(resolution, resolution, resolution)


def candidate_cells(first: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every cell of each face's bounding range ``first..last [F, 3]`` (inclusive):
    ``(face index [K], cell (x, y, z) [K, 3])``."""
    extent = last - first + 1  # [F, 3]
    counts = extent.prod(1)
    face = torch.repeat_interleave(torch.arange(len(first)), counts)
    offset = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        counts.cumsum(0) - counts, counts
    )  # position inside the face's range
    e = extent[face]
    local = torch.stack(
        [offset % e[:, 0], offset // e[:, 0] % e[:, 1], offset // (e[:, 0] * e[:, 1])], 1
    )
    return face, first[face] + local


def triangle_box_overlap(triangles: torch.Tensor, half: float) -> torch.Tensor:
    """``bool [K]``: whether each triangle ``[K, 3, 3]`` (centred on its box) meets the closed
    cube ``[-half, half]^3``. Separating axes: the cube's normals (the candidate ranges already
    ensure those overlap), the triangle's normal, and the 9 edge x axis cross products."""
    edges = triangles.roll(-1, dims=1) - triangles  # [K, 3, 3]
    axes = [torch.linalg.cross(edges[:, 0], edges[:, 1])[:, None, :]]  # triangle normal
    unit = torch.eye(3, dtype=triangles.dtype)
    for k in range(3):
        axes.append(torch.linalg.cross(unit[k].expand_as(edges), edges))  # [K, 3, 3]
    axes = torch.cat(axes, dim=1)  # [K, 10, 3]
    projections = torch.einsum("kad,kvd->kav", axes, triangles)  # [K, 10, 3]
    radius = half * axes.abs().sum(-1)  # [K, 10]
    separated = (projections.amin(-1) > radius) | (projections.amax(-1) < -radius)
    return ~separated.any(1)
