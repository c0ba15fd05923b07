"""open_edge_count: which meshes are closed (the inside test by ray parity holds)."""

from __future__ import annotations

import torch

from visionflow.datamodules.mesh_io import read_mesh
from visionflow.datamodules.shapes3d_render import torus_mesh
from visionflow.ops import cubify, ico_sphere, open_edge_count


def test_closed_meshes_have_no_open_edge():
    verts, faces = ico_sphere(2)
    assert open_edge_count(verts, faces) == 0
    torus = [torch.from_numpy(a) for a in torus_mesh(1.0, 0.3)]
    assert open_edge_count(*torus) == 0
    grid = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    grid[0, 1:3, 1:3, 1] = grid[0, 1, 1, 2] = True  # two boxes sharing only an edge
    (cubified,) = cubify(grid)
    assert open_edge_count(*cubified) == 0  # non-manifold, still closed


def test_a_hole_opens_three_edges_and_welding_closes_split_vertices():
    verts, faces = ico_sphere(1)
    assert open_edge_count(verts, faces[1:]) == 3
    # every face with its own three vertices (as OBJ files split them by texture coordinate)
    split = verts[faces].reshape(-1, 3)
    assert open_edge_count(split, torch.arange(len(split)).view(-1, 3)) == 0


def test_real_meshes(shared_data):
    shared = shared_data / "meshes"
    counts = {
        name: open_edge_count(*(torch.from_numpy(a) for a in read_mesh(shared / name)))
        for name in ("cheburashka.off", "suzanne.obj", "teapot.obj")
    }
    assert counts["cheburashka.off"] == 0  # a closed character mesh
    assert counts["suzanne.obj"] > 0 and counts["teapot.obj"] > 0  # both have boundary edges
