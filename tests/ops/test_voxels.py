"""voxel_iou, voxelize_points, voxelize_mesh, points_inside_mesh and cubify against naive
references (Python loops, open3d's voxelizer, the generalized winding number) and known values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from visionflow.datamodules.mesh_io import read_mesh
from visionflow.datamodules.shapes3d_render import box_mesh, torus_mesh
from visionflow.ops import (
    cubify,
    ico_sphere,
    points_inside_mesh,
    sample_points_from_mesh,
    voxel_iou,
    voxelize_mesh,
    voxelize_points,
)


def random_grids(seed=0, shape=(3, 5, 4, 6), density=0.4):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density


def bumpy_sphere(seed=0):
    """A closed, star-shaped mesh with no vertex or face on a cell boundary of the test grids."""
    verts, faces = ico_sphere(2)
    scale = 0.75 + 0.15 * torch.rand(len(verts), 1, generator=torch.Generator().manual_seed(seed))
    return (verts * scale).double() + 0.0131, faces


def winding_number(verts, faces, points):
    """Generalized winding number ``[P]`` (sum of solid angles / 4 pi, Van Oosterom-Strackee)."""
    a, b, c = (verts[faces][:, k][None] - points[:, None] for k in range(3))  # [P, F, 3]
    la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
    det = torch.einsum("pfd,pfd->pf", a, torch.linalg.cross(b, c))
    dot = lambda u, v: torch.einsum("pfd,pfd->pf", u, v)
    denominator = la * lb * lc + dot(a, b) * lc + dot(a, c) * lb + dot(b, c) * la
    return (2 * torch.atan2(det, denominator)).sum(1) / (4 * math.pi)


def test_voxel_iou_known_values_and_naive_reference():
    grids = random_grids()
    torch.testing.assert_close(voxel_iou(grids, grids), torch.ones(3))
    empty = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    assert voxel_iou(empty, empty).item() == 1.0
    half = torch.zeros(1, 2, 2, 2)
    half[0, 0] = 0.9  # 4 cells of probability 0.9 vs 2 of them occupied
    target = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    target[0, 0, 0] = True
    assert voxel_iou(half, target).item() == pytest.approx(0.5)
    other = random_grids(seed=1)
    for b in range(3):
        a = {i for i, on in enumerate(grids[b].flatten().tolist()) if on}
        c = {i for i, on in enumerate(other[b].flatten().tolist()) if on}
        assert voxel_iou(grids, other)[b].item() == pytest.approx(len(a & c) / len(a | c))
    with pytest.raises(ValueError, match="same shape"):
        voxel_iou(grids, other[:2])


def test_voxelize_points_matches_a_loop():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(2, 50, 3, generator=generator) * 2.4 - 1.2  # some outside [-1, 1]
    points[0, 0] = torch.tensor([1.0, 1.0, -1.0])  # on the upper bound: the last cell
    lengths = torch.tensor([50, 20])
    grid = voxelize_points(points, 4, lengths)
    expected = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    for b in range(2):
        for x, y, z in points[b, : lengths[b]].tolist():
            cell = [
                min(int(math.floor((value + 1) / 0.5)), 3) if value <= 1 else 4
                for value in (x, y, z)
            ]
            if all(0 <= index < 4 for index in cell):
                expected[b, cell[2], cell[1], cell[0]] = True
    assert torch.equal(grid, expected) and grid[0, 0, 3, 3]


def test_voxelize_a_cube_known_counts():
    verts, faces = (torch.from_numpy(a) for a in box_mesh(np.array([1.2, 1.2, 1.2])))
    # cells of side 0.25; the cube [-0.6, 0.6]^3 spans cells 1..6 on each axis
    surface = voxelize_mesh(verts, faces, 8, fill=False)
    solid = voxelize_mesh(verts, faces, 8, fill=True)
    assert solid.sum() == 6**3 and surface.sum() == 6**3 - 4**3
    assert solid[1:7, 1:7, 1:7].all() and not surface[2:6, 2:6, 2:6].any()


def open3d_surface_cells(verts, faces, resolution):
    """open3d's voxelization of the mesh over [-1, 1]^3, as a bool [D, H, W] grid."""
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(verts.numpy()),
        o3d.utility.Vector3iVector(faces.numpy().astype(np.int32)),
    )
    grid = o3d.geometry.VoxelGrid.create_from_triangle_mesh_within_bounds(
        mesh, 2 / resolution, np.full(3, -1.0), np.full(3, 1.0)
    )
    index = np.array([voxel.grid_index for voxel in grid.get_voxels()])
    expected = torch.zeros((resolution,) * 3, dtype=torch.bool)
    expected[index[:, 2], index[:, 1], index[:, 0]] = True
    return expected


def test_mesh_surface_matches_open3d_and_contains_sampled_points():
    verts, faces = bumpy_sphere()
    ours = voxelize_mesh(verts, faces, 16, fill=False)
    assert torch.equal(ours, open3d_surface_cells(verts, faces, 16))
    points, _ = sample_points_from_mesh(verts, faces, 20000, torch.Generator().manual_seed(0))
    assert ours[voxelize_points(points[None], 16)[0]].all()


@pytest.mark.parametrize(
    "name", ["stanford_bunny.ply", "cheburashka.off", "suzanne.obj", "teapot.obj", "cow.glb"]
)
def test_real_mesh_surfaces_match_open3d(shared_data, name):
    verts, faces = (torch.from_numpy(a) for a in read_mesh(shared_data / "meshes" / name))
    low, high = verts.double().amin(0), verts.double().amax(0)
    verts = (verts.double() - (low + high) / 2) / ((high - low).max() / 2) * 0.9 + 0.0123
    ours = voxelize_mesh(verts, faces, 32, fill=False)
    assert torch.equal(ours, open3d_surface_cells(verts, faces, 32)) and ours.sum() > 1000


def test_filled_cells_match_the_winding_number():
    verts, faces = (torch.from_numpy(a) for a in torus_mesh(0.8, 0.3))
    verts = verts.double() + 0.0071
    solid = voxelize_mesh(verts, faces, 12, fill=True)
    surface = voxelize_mesh(verts, faces, 12, fill=False)
    centers = -1 + (torch.arange(12, dtype=torch.float64) + 0.5) / 6
    z, y, x = torch.meshgrid(centers, centers, centers, indexing="ij")
    winding = winding_number(verts, faces, torch.stack([x, y, z], -1).view(-1, 3)).view(12, 12, 12)
    assert torch.equal(solid, surface | (winding.abs() > 0.5))
    assert (solid & ~surface).sum() > 0  # the torus has inner cells


def test_points_inside_match_the_winding_number():
    verts, faces = bumpy_sphere(seed=3)
    points = torch.rand(3000, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    points = points * 2 - 1
    inside = points_inside_mesh(verts, faces, points)
    assert torch.equal(inside, winding_number(verts, faces, points).abs() > 0.5)
    assert 0.2 < inside.float().mean() < 0.8


def test_inside_is_exact_on_the_edges_of_a_cubified_grid():
    """Rays along the lattice lines of a cubified grid hit its edges and vertices exactly."""
    grid = random_grids(seed=4, shape=(1, 5, 5, 5), density=0.5)[0]
    verts, faces = cubify(grid[None])[0]
    centers = -1 + (torch.arange(5) + 0.5) * 0.4
    z, y, x = torch.meshgrid(centers, centers, centers, indexing="ij")
    inside = points_inside_mesh(verts, faces, torch.stack([x, y, z], -1).view(-1, 3))
    assert torch.equal(inside.view(5, 5, 5), grid)
    padded = torch.nn.functional.pad(grid, (1, 1, 1, 1))  # [5, 7, 7]: empty around in x and y
    checked = 0
    for d, h, w in itertools.product(range(5), range(6), range(6)):
        around = padded[d, h : h + 2, w : w + 2]  # the 4 cells sharing the vertical edge
        if around.all() or not around.any():
            point = torch.tensor([[-1 + 0.4 * w, -1 + 0.4 * h, centers[d]]])
            assert points_inside_mesh(verts, faces, point).item() == around.all().item()
            checked += 1
    assert checked > 50


def naive_squares(grid):
    """Set of boundary squares, each a frozenset of its 4 lattice corners (x, y, z)."""
    squares = set()
    depth, height, width = grid.shape
    for d, h, w in itertools.product(range(depth), range(height), range(width)):
        if not grid[d, h, w]:
            continue
        for axis, step in itertools.product(range(3), (-1, 1)):
            cell = [w, h, d]
            neighbour = list(cell)
            neighbour[axis] += step
            nx, ny, nz = neighbour
            if 0 <= nz < depth and 0 <= ny < height and 0 <= nx < width and grid[nz, ny, nx]:
                continue
            plane = cell[axis] + (step > 0)
            others = [k for k in range(3) if k != axis]
            corners = set()
            for u, v in itertools.product((0, 1), (0, 1)):
                corner = list(cell)
                corner[axis] = plane
                corner[others[0]] += u
                corner[others[1]] += v
                corners.add(tuple(corner))
            squares.add(frozenset(corners))
    return squares


def test_cubify_one_voxel_is_a_unit_cube():
    verts, faces = cubify(torch.ones(1, 1, 1, 1), bounds=(-0.5, 0.5))[0]
    assert verts.shape == (8, 3) and faces.shape == (12, 3)
    assert {tuple(v) for v in verts.tolist()} == set(itertools.product((-0.5, 0.5), repeat=3))
    corners = verts[faces]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert (torch.einsum("fd,fd->f", normals, corners.mean(1)) > 0).all()  # outwards
    assert cubify(torch.zeros(1, 2, 2, 2))[0][1].shape == (0, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_cubify_matches_naive_squares_and_is_closed(seed):
    grids = random_grids(seed)
    for grid, (verts, faces) in zip(grids, cubify(grids.float(), threshold=0.5)):
        depth, height, width = grid.shape
        lattice = ((verts + 1) / 2 * torch.tensor([width, height, depth])).round().long()
        assert len({tuple(p) for p in lattice.tolist()}) == len(verts)  # shared corners merged
        found: dict[frozenset, int] = {}
        for triangle in lattice[faces]:  # [3, 3]: its bounding box is the unit square it halves
            low, high = triangle.amin(0), triangle.amax(0)
            assert sorted((high - low).tolist()) == [0, 1, 1]
            square = frozenset(
                tuple(torch.where(torch.tensor(pick, dtype=torch.bool), high, low).tolist())
                for pick in itertools.product((0, 1), repeat=3)
            )
            found[square] = found.get(square, 0) + 1
        assert set(found.values()) == {2}
        assert set(found) == naive_squares(grid)
        directed = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        forward = sorted(map(tuple, directed.tolist()))
        assert forward == sorted(map(tuple, directed.flip(1).tolist()))  # closed, oriented
        corners = verts[faces].double()
        volume = (
            torch.einsum(
                "fd,fd->f", corners[:, 0], torch.linalg.cross(corners[:, 1], corners[:, 2])
            ).sum()
            / 6
        )
        cell = 8 / (depth * height * width)
        assert volume.item() == pytest.approx(grid.sum().item() * cell)


def test_points_just_inside_the_upper_bound_fall_in_the_last_cell():
    """(1 - 2^-24 + 1) * 16 rounds to 32 in float32: the point is inside [-1, 1] all the same."""
    below_one = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    grid = voxelize_points(torch.stack([below_one, torch.tensor(0.0), -below_one])[None, None], 32)
    assert grid.sum() == 1 and grid[0, 0, 16, 31]
