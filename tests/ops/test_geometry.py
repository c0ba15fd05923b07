"""ico_sphere, subdivide, sample_points_from_mesh and f_score against known values."""

from __future__ import annotations

import math

import pytest
import torch

from visionflow.ops import (
    f_score,
    ico_sphere,
    nearest_distances,
    sample_points_from_mesh,
    sample_points_from_meshes,
)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_ico_sphere_counts_and_radius(level):
    verts, faces = ico_sphere(level)
    assert verts.shape == (10 * 4**level + 2, 3) and faces.shape == (20 * 4**level, 3)
    torch.testing.assert_close(verts.norm(dim=1), torch.ones(len(verts)))
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(1).values
    assert len(torch.unique(edges, dim=0)) * 2 == len(edges)  # closed: every edge in 2 faces
    corners = verts[faces]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert (torch.einsum("fd,fd->f", normals, corners.mean(1)) > 0).all()  # wound outwards


def test_points_lie_on_the_surface_with_its_normals():
    verts, faces = ico_sphere(3)
    points, normals = sample_points_from_mesh(verts, faces, 2000, torch.Generator().manual_seed(0))
    assert points.shape == normals.shape == (2000, 3)
    radius = points.norm(dim=1)
    assert radius.max() <= 1 + 1e-5 and radius.min() > 0.98  # on the flat faces inside the ball
    assert (torch.einsum("nd,nd->n", normals, points / radius[:, None]).abs() > 0.98).all()


def test_sampling_is_area_weighted():
    # two separate triangles of areas 1 and 3
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [10, 0, 0], [16, 0, 0], [10, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    points, normals = sample_points_from_mesh(verts, faces, 20000, torch.Generator().manual_seed(1))
    assert (points[:, 0] > 5).float().mean().item() == pytest.approx(0.75, abs=0.01)
    torch.testing.assert_close(normals.abs(), torch.tensor([0.0, 0, 1]).expand(20000, 3))


def test_sampling_refuses_a_mesh_without_area():
    verts = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="non-zero area"):
        sample_points_from_mesh(verts, torch.tensor([[0, 1, 2]]), 10)


def test_batched_sampling_samples_each_surface_and_accepts_a_flat_mesh():
    verts, faces = ico_sphere(1)
    meshes = torch.stack([verts, 2 * verts + 1, torch.zeros_like(verts)])  # the last: no area
    points, normals = sample_points_from_meshes(
        meshes, faces, 500, torch.Generator().manual_seed(0)
    )
    assert points.shape == normals.shape == (3, 500, 3)
    for sampled, normal, centre, scale in zip(points, normals, (0, 1), (1, 2)):
        radius = (sampled - centre).norm(dim=1) / scale  # on the sphere (centre, scale)
        assert radius.max() <= 1 + 1e-5 and radius.min() > 0.9
        outward = torch.einsum("nd,nd->n", normal, (sampled - centre) / scale / radius[:, None])
        assert (outward > 0.9).all()
    assert (points[2] == 0).all() and (normals[2] == 0).all()


def test_f_score_known_values():
    target = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]]])
    predicted = torch.tensor([[[0.0, 0.05, 0], [1, 0.2, 0]]])
    scores = f_score(predicted, target, (0.1, 0.5))
    torch.testing.assert_close(scores["precision"], torch.tensor([[0.5, 1.0]]))
    torch.testing.assert_close(scores["recall"], torch.tensor([[0.25, 0.5]]))
    torch.testing.assert_close(scores["f1"], torch.tensor([[1 / 3, 2 / 3]]))
    far = f_score(predicted + 10, target, (0.1,))["f1"]
    assert far.item() == 0.0
    distances = nearest_distances(predicted, target, torch.tensor([2]), torch.tensor([4]))
    torch.testing.assert_close(distances, torch.tensor([[0.05, 0.2]]))


def test_f_score_counts_a_point_at_the_threshold_as_outside_it():
    """Distances strictly below ``t`` count, as in Tatarchenko et al.'s code (``d < th``) and
    Mesh R-CNN's evaluation (``dists < t``)."""
    target = torch.tensor([[[0.0, 0, 0]]])
    predicted = torch.tensor([[[0.5, 0, 0]]])  # 0.5 exactly, in float32 too
    assert f_score(predicted, target, (0.5,))["f1"].item() == 0.0
    assert f_score(predicted, target, (0.5001,))["f1"].item() == 1.0


def test_f_score_ignores_padding():
    target = torch.tensor([[[0.0, 0, 0], [50, 0, 0]]])
    predicted = torch.tensor([[[0.0, 0, 0], [99, 0, 0]]])
    scores = f_score(predicted, target, (0.1,), torch.tensor([1]), torch.tensor([1]))
    assert scores["f1"].item() == 1.0
    assert math.isclose(f_score(predicted, target, (0.1,))["f1"].item(), 0.5)


def test_f_score_of_an_empty_cloud_is_zero():
    """No point lies within ``t`` of an empty cloud: an empty target gives precision 0, an empty
    prediction recall 0 (their padding, here at the other cloud's points, is no neighbour)."""
    cloud = torch.zeros(1, 3, 3)
    empty = torch.tensor([0])
    scores = f_score(cloud, cloud, (0.1,), target_lengths=empty)
    assert scores["precision"].item() == 0 and scores["f1"].item() == 0
    scores = f_score(cloud, cloud, (0.1,), predicted_lengths=empty)
    assert scores["recall"].item() == 0 and scores["f1"].item() == 0
