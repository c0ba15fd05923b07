"""mesh_edge_loss, mesh_laplacian_smoothing, mesh_normal_consistency and vert_align against
naive loops, known values and gradcheck."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from visionflow.datamodules.shapes3d_render import box_mesh
from visionflow.ops import (
    ico_sphere,
    mesh_edge_loss,
    mesh_laplacian_smoothing,
    mesh_normal_consistency,
    vert_align,
)
from visionflow.ops.mesh_edges import unique_edges
from visionflow.ops.mesh_normal_consistency import adjacent_pairs


def bumpy_spheres(batch=2, level=1, seed=0):
    verts, faces = ico_sphere(level)
    noise = torch.rand(batch, len(verts), 1, generator=torch.Generator().manual_seed(seed))
    return (verts[None] * (0.8 + 0.4 * noise)).double(), faces


def edge_sets(faces):
    return {
        tuple(sorted((a, b))) for face in faces.tolist() for a, b in itertools.combinations(face, 2)
    }


def naive_edge_loss(verts, faces, target):
    edges = edge_sets(faces)
    per_mesh = [
        sum(((v[a] - v[b]).norm() - target) ** 2 for a, b in edges) / len(edges) for v in verts
    ]
    return sum(per_mesh) / len(per_mesh)


def naive_laplacian(verts, faces):
    neighbours = {i: set() for i in range(verts.shape[1])}
    for a, b in edge_sets(faces):
        neighbours[a].add(b)
        neighbours[b].add(a)
    per_mesh = []
    for v in verts:
        norms = [
            (sum(v[j] for j in near) / len(near) - v[i]).norm() if near else v[i].sum() * 0
            for i, near in neighbours.items()
        ]
        per_mesh.append(sum(norms) / len(norms))
    return sum(per_mesh) / len(per_mesh)


def naive_normal_consistency(verts, faces):
    owners = {}
    for face in faces.tolist():
        for a, b in itertools.combinations(face, 2):
            opposite = next(c for c in face if c not in (a, b))
            owners.setdefault(tuple(sorted((a, b))), []).append(opposite)
    per_mesh = []
    for v in verts:
        terms = []
        for (a, b), opposite in owners.items():
            for first, second in itertools.combinations(opposite, 2):
                n0 = torch.linalg.cross(v[b] - v[a], v[first] - v[a])
                n1 = -torch.linalg.cross(v[b] - v[a], v[second] - v[a])
                terms.append(1 - F.cosine_similarity(n0, n1, dim=0, eps=1e-6))
        per_mesh.append(sum(terms) / len(terms))
    return sum(per_mesh) / len(per_mesh)


@pytest.mark.parametrize("target", [0.0, 0.3])
def test_edge_loss_matches_a_loop_and_gradcheck(target):
    verts, faces = bumpy_spheres()
    torch.testing.assert_close(
        mesh_edge_loss(verts, faces, target), naive_edge_loss(verts, faces, target)
    )
    small, small_faces = bumpy_spheres(batch=1, level=0)
    small.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: mesh_edge_loss(v, small_faces, target), (small,))


def test_laplacian_matches_a_loop_known_values_and_gradcheck():
    verts, faces = bumpy_spheres()
    torch.testing.assert_close(
        mesh_laplacian_smoothing(verts, faces), naive_laplacian(verts, faces)
    )
    # a flat hexagonal fan: the centre sits at its neighbours' mean (0); each ring vertex's
    # neighbours (centre and the two beside it) average to a third of it: |L v| = 2/3
    angles = torch.arange(6, dtype=torch.float64) * math.pi / 3
    ring = torch.stack([angles.cos(), angles.sin(), torch.zeros(6, dtype=torch.float64)], 1)
    fan = torch.cat([torch.zeros(1, 3, dtype=torch.float64), ring])
    fan_faces = torch.tensor([[0, k, k % 6 + 1] for k in range(1, 7)])
    assert mesh_laplacian_smoothing(fan, fan_faces).item() == pytest.approx(6 * (2 / 3) / 7)
    isolated = torch.cat([fan, torch.ones(1, 3, dtype=torch.float64)])  # vertex 7: no edge, 0
    assert mesh_laplacian_smoothing(isolated, fan_faces).item() == pytest.approx(4 / 8)
    small, small_faces = bumpy_spheres(batch=1, level=0)
    small.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: mesh_laplacian_smoothing(v, small_faces), (small,))


def test_normal_consistency_matches_a_loop_known_values_and_gradcheck():
    verts, faces = bumpy_spheres()
    torch.testing.assert_close(
        mesh_normal_consistency(verts, faces), naive_normal_consistency(verts, faces)
    )
    cube_verts, cube_faces = (torch.from_numpy(a) for a in box_mesh(np.ones(3)))
    # 12 cube edges between perpendicular faces (1 each), 6 diagonals inside flat faces (0)
    assert mesh_normal_consistency(cube_verts.double(), cube_faces).item() == pytest.approx(12 / 18)
    flipped = cube_faces.clone()
    flipped[0] = flipped[0].flip(0)  # the winding of a face does not matter
    assert mesh_normal_consistency(cube_verts.double(), flipped).item() == pytest.approx(12 / 18)
    square = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.float64)
    assert mesh_normal_consistency(square, torch.tensor([[0, 1, 2], [0, 2, 3]])).item() == 0
    assert mesh_normal_consistency(square, torch.tensor([[0, 1, 2]])).item() == 0
    small, small_faces = bumpy_spheres(batch=1, level=0)
    small.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: mesh_normal_consistency(v, small_faces), (small,))


def naive_vert_align(features, verts):
    batch, channels, height, width = features.shape
    out = torch.zeros(batch, verts.shape[1], channels, dtype=features.dtype)
    for b, v in itertools.product(range(batch), range(verts.shape[1])):
        x, y = verts[b, v, 0].item(), verts[b, v, 1].item()
        col, row = (x + 1) * width / 2 - 0.5, (1 - y) * height / 2 - 0.5
        c0, r0 = math.floor(col), math.floor(row)
        for r, c in itertools.product((r0, r0 + 1), (c0, c0 + 1)):
            weight = (1 - abs(col - c)) * (1 - abs(row - r))
            if 0 <= r < height and 0 <= c < width:
                out[b, v] += weight * features[b, :, r, c]
    return out


def test_vert_align_matches_bilinear_sampling_in_the_camera_frame():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 5, 6, generator=generator, dtype=torch.float64)
    verts = torch.rand(2, 7, 3, generator=generator, dtype=torch.float64) * 2.4 - 1.2
    torch.testing.assert_close(vert_align(features, verts), naive_vert_align(features, verts))
    # the centre of pixel (row 1, col 4) is x = 9 / 6 - 1, y = 1 - 3 / 5
    centre = torch.tensor([[[9 / 6 - 1, 1 - 3 / 5, 0.7]]], dtype=torch.float64).expand(2, -1, -1)
    torch.testing.assert_close(vert_align(features, centre)[:, 0], features[:, :, 1, 4])
    features.requires_grad_(True)
    inside = (verts * 0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(vert_align, (features, inside))
    with pytest.raises(ValueError, match="vert_align"):
        vert_align(features[0], verts)


def test_the_losses_take_the_topology_the_caller_keeps():
    verts, faces = bumpy_spheres()
    edges = unique_edges(faces)
    torch.testing.assert_close(
        mesh_edge_loss(verts, faces, 0.1, edges=edges), mesh_edge_loss(verts, faces, 0.1)
    )
    torch.testing.assert_close(
        mesh_laplacian_smoothing(verts, faces, edges), mesh_laplacian_smoothing(verts, faces)
    )
    torch.testing.assert_close(
        mesh_normal_consistency(verts, faces, adjacent_pairs(faces)),
        mesh_normal_consistency(verts, faces),
    )
    assert mesh_edge_loss(verts, faces, edges=edges[:3]) != mesh_edge_loss(verts, faces)


def test_losses_of_a_mesh_without_edges_or_vertices_are_zero_not_nan():
    """PyTorch3D's losses sum per-edge (per-vertex) terms weighted by 1 / count: a mesh with none
    contributes 0 (an empty cubified grid has no faces)."""
    no_faces = torch.zeros(0, 3, dtype=torch.int64)
    verts = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    loss = mesh_edge_loss(verts, no_faces, 0.5)
    assert loss.item() == 0
    loss.backward()
    assert verts.grad.abs().sum() == 0
    assert mesh_laplacian_smoothing(torch.zeros(2, 0, 3), no_faces).item() == 0
