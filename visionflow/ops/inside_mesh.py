"""Which points lie inside a closed triangle mesh, by the parity of ray crossings along +z.

    inside = points_inside_mesh(verts [V, 3], faces [F, 3], points [P, 3])   # bool [P]

A vertical ray from each point crosses the surface where its ``(x, y)`` falls inside a
triangle's projection above the point; an odd count means inside. Rays through a projected
edge or vertex are counted once: every edge function is computed in one orientation shared by
the triangles on both sides (bit-identical values of opposite sign), and ties go to the
triangle for which the edge is a top or left edge (the rasterizer's fill rule), so grid points
on the edges of axis-aligned meshes are classified consistently. Triangles seen edge-on are
skipped. Meant for closed (watertight) meshes; no gradients (the result is piecewise constant).
"""

from __future__ import annotations

import torch

#: largest (column x face) block evaluated at once
CHUNK_PAIRS = 1 << 21


def points_inside_mesh(
    verts: torch.Tensor, faces: torch.Tensor, points: torch.Tensor
) -> torch.Tensor:
    """``bool [P]``: whether each of ``points [P, 3]`` is inside the mesh ``(verts [V, 3],
    faces [F, 3])`` (points on the surface may go either way)."""
    verts, points = verts.detach().double(), points.detach().double()
    column, height = ray_crossings(verts, faces, points[:, :2])
    above = height > points[column, 2]
    count = torch.zeros(len(points), dtype=torch.int64)
    count.index_add_(0, column[above], torch.ones(int(above.sum()), dtype=torch.int64))
    return count % 2 == 1


def crossings_above(
    verts: torch.Tensor, faces: torch.Tensor, columns: torch.Tensor, heights: torch.Tensor
) -> torch.Tensor:
    """int64 ``[C, D]``: for each vertical line ``columns [C, 2]`` (x, y) and each of the sorted
    ``heights [D]``, how many times the surface crosses the line above that height."""
    column, height = ray_crossings(verts.detach().double(), faces, columns.double())
    below = torch.searchsorted(heights.double().contiguous(), height)  # heights under the crossing
    steps = torch.zeros(len(columns), len(heights) + 1, dtype=torch.int64)
    steps[:, 0].index_add_(0, column, torch.ones_like(column))
    steps.view(-1).index_add_(0, column * (len(heights) + 1) + below, -torch.ones_like(column))
    return steps.cumsum(1)[:, :-1]


def ray_crossings(
    verts: torch.Tensor, faces: torch.Tensor, columns: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the vertical lines ``columns [C, 2]`` cross the mesh: ``(column index [K],
    z of the crossing [K])``, one entry per (line, triangle) pair that meets."""
    corners = verts[faces]  # [F, 3, 3]
    xy, z = corners[..., :2], corners[..., 2]
    area = cross2(xy[:, 1] - xy[:, 0], xy[:, 2] - xy[:, 0])  # [F], twice the signed area
    keep = area != 0
    xy, z, area = xy[keep], z[keep], area[keep]
    flip = area < 0  # wind every projection counter-clockwise
    xy[flip] = xy[flip][:, [0, 2, 1]]
    z[flip] = z[flip][:, [0, 2, 1]]
    area = area.abs()
    low, high = xy.amin(1), xy.amax(1)  # [F, 2] projected bounding boxes
    found_columns, found_heights = [], []
    step = max(1, CHUNK_PAIRS // max(len(xy), 1))
    for start in range(0, len(columns), step):
        points = columns[start : start + step, None, :]  # [c, 1, 2]
        near = ((points >= low) & (points <= high)).all(-1)  # [c, F]
        line, face = near.nonzero(as_tuple=True)
        weights = edge_weights(xy[face], columns[start + line])  # [K, 3]
        hit = (weights >= 0).all(-1)
        line, face, weights = line[hit], face[hit], weights[hit]
        found_columns.append(line + start)
        found_heights.append((weights * z[face]).sum(-1) / area[face])
    return torch.cat(found_columns), torch.cat(found_heights)


def edge_weights(xy: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Unnormalized barycentric weights ``[K, 3]`` of ``points [K, 2]`` in the
    counter-clockwise triangles ``xy [K, 3, 2]``; a point on an edge gets ``-1`` for that edge
    unless it is a top or left edge (the fill rule), so a shared edge belongs to one side."""
    weights = []
    for corner in range(3):  # the weight of a corner is the edge function of the opposite edge
        start, end = xy[:, (corner + 1) % 3], xy[:, (corner + 2) % 3]  # [K, 2]
        swap = (start[:, 0] > end[:, 0]) | ((start[:, 0] == end[:, 0]) & (start[:, 1] > end[:, 1]))
        low = torch.where(swap[:, None], end, start)
        high = torch.where(swap[:, None], start, end)
        value = cross2(high - low, points - low)  # [K], the same on both sides of the edge
        value = torch.where(swap, -value, value)
        delta = end - start
        top_left = (delta[:, 1] < 0) | ((delta[:, 1] == 0) & (delta[:, 0] < 0))
        weights.append(torch.where((value == 0) & ~top_left, -1.0, value))
    return torch.stack(weights, -1)


def cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z of the cross product of 2D vectors ``a [..., 2]`` and ``b [..., 2]``."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
