"""Voxel grid -> watertight triangle mesh, as PyTorch3D's ``cubify`` with ``align="corner"``.

    meshes = cubify(voxels [B, D, H, W], threshold=0.5)    # [(verts [V, 3], faces [F, 3]), ...]

Every occupied cell becomes a cube; only the squares between an occupied cell and an empty one
(or the outside) are kept, two triangles each, wound counter-clockwise seen from outside, and
corners shared by several squares are one vertex. The grid spans ``bounds`` on every axis
(cell ``[d, h, w]`` as in :mod:`visionflow.ops.voxelize`: x by ``w``, y by ``h``, z by ``d``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionflow.ops.voxel_iou import occupied

#: per (axis of the normal as x=0, y=1, z=2): the two in-plane axes (b, c) with b x c = normal
PLANE_AXES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}
#: corners of a square in (b, c) units, counter-clockwise around +normal
SQUARE = torch.tensor([[0, 0], [1, 0], [1, 1], [0, 1]])


def cubify(
    voxels: torch.Tensor, threshold: float = 0.5, bounds: tuple[float, float] = (-1.0, 1.0)
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One mesh ``(verts float32 [V, 3], faces int64 [F, 3])`` per grid of ``voxels
    [B, D, H, W]`` (bool, or occupied where ``> threshold``); an empty grid gives an empty mesh
    (``[0, 3]`` and ``[0, 3]``)."""
    if voxels.ndim != 4:
        raise ValueError(f"voxels: expected a grid [B, D, H, W], got {tuple(voxels.shape)}")
    grid = occupied(voxels.detach(), threshold).cpu()
    return [grid_mesh(one, bounds) for one in grid]


def grid_mesh(grid: torch.Tensor, bounds: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The cubified mesh of one ``bool [D, H, W]`` grid."""
    squares = torch.cat(
        [boundary_squares(grid, axis, sign) for axis in range(3) for sign in (1, -1)]
    )
    lattice = torch.tensor(grid.shape[::-1]) + 1  # lattice points per axis (x, y, z)
    ids = (squares[..., 2] * lattice[1] + squares[..., 1]) * lattice[0] + squares[..., 0]  # [Q, 4]
    unique, corner = torch.unique(ids.flatten(), return_inverse=True)
    corner = corner.view(-1, 4)
    x = unique % lattice[0]
    y = unique // lattice[0] % lattice[1]
    z = unique // (lattice[0] * lattice[1])
    lo, hi = bounds
    cells = torch.tensor(grid.shape[::-1], dtype=torch.float32)  # W, H, D
    verts = lo + torch.stack([x, y, z], 1).float() * ((hi - lo) / cells)
    faces = torch.cat([corner[:, [0, 1, 2]], corner[:, [0, 2, 3]]])
    return verts, faces


def boundary_squares(grid: torch.Tensor, axis: int, sign: int) -> torch.Tensor:
    """Lattice corners int64 ``[Q, 4, 3]`` (x, y, z) of the squares facing ``sign`` along
    ``axis`` (x=0, y=1, z=2) between an occupied cell of ``grid [D, H, W]`` and an empty one,
    in counter-clockwise order seen from outside."""
    dim = 2 - axis  # grid dimension of the axis (D is z)
    padded = F.pad(grid, (1, 1, 1, 1, 1, 1))
    neighbour = padded.roll(-sign, dims=dim)[1:-1, 1:-1, 1:-1]
    d, h, w = (grid & ~neighbour).nonzero(as_tuple=True)
    cell = torch.stack([w, h, d], 1)  # [Q, 3] (x, y, z)
    b, c = PLANE_AXES[axis]
    order = SQUARE if sign > 0 else SQUARE.flip(0)
    corners = cell[:, None, :].repeat(1, 4, 1)  # [Q, 4, 3]
    corners[..., axis] += int(sign > 0)
    corners[..., b] += order[:, 0]
    corners[..., c] += order[:, 1]
    return corners
