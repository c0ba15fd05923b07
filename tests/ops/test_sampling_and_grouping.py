"""sample_farthest_points and ball_query against naive loops, on ragged batches."""

from __future__ import annotations

import importlib

import pytest
import torch

from visionflow.ops import ball_query, sample_farthest_points


def ragged_clouds(seed=0):
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(3, 30, 3, generator=generator, dtype=torch.float64)
    return points, torch.tensor([30, 12, 4])


def naive_farthest(cloud, samples):
    """Indices of farthest point sampling of cloud [N, D] from point 0, one point at a time."""
    chosen = [0]
    while len(chosen) < min(samples, len(cloud)):
        distances = [min(float((p - cloud[c]).square().sum()) for c in chosen) for p in cloud]
        chosen.append(max(range(len(cloud)), key=distances.__getitem__))
    return chosen + [-1] * (samples - len(chosen))


def test_farthest_points_match_a_loop_on_ragged_clouds():
    points, lengths = ragged_clouds()
    selected, index = sample_farthest_points(points, lengths, K=8)
    assert selected.shape == (3, 8, 3) and index.shape == (3, 8)
    for b in range(3):
        expected = naive_farthest(points[b, : lengths[b]], 8)
        assert index[b].tolist() == expected
        for k, i in enumerate(expected):
            torch.testing.assert_close(selected[b, k], points[b, i] if i >= 0 else points[b, 0] * 0)


def test_farthest_points_spread_out_and_random_start_varies():
    corners = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [1, 0, 0], [0.9, 0, 0], [0.5, 0, 0]]])
    assert sample_farthest_points(corners, K=3)[1].tolist() == [[0, 2, 4]]
    starts = {
        int(sample_farthest_points(corners, K=1, random_start_point=True)[1][0, 0])
        for _ in range(30)
    }
    assert len(starts) > 1
    with pytest.raises(ValueError, match="K"):
        sample_farthest_points(corners, K=0)


def naive_ball(query, cloud, neighbours, radius):
    """The first `neighbours` indices of cloud [M, D] within radius of query [D], -1 after."""
    inside = [j for j, p in enumerate(cloud) if float((p - query).square().sum()) < radius**2]
    return (inside + [-1] * neighbours)[:neighbours]


@pytest.mark.parametrize("chunk", [1 << 26, 50])  # one block; a few queries a chunk
def test_ball_query_matches_a_loop_on_ragged_clouds(monkeypatch, chunk):
    monkeypatch.setattr(
        importlib.import_module("visionflow.ops.ball_query"), "CHUNK_ELEMENTS", chunk
    )
    points, lengths = ragged_clouds(1)
    queries, query_lengths = points[:, :10], torch.tensor([10, 7, 0])
    dists, idx, nn = ball_query(queries, points, query_lengths, lengths, K=6, radius=0.4)
    assert dists.shape == idx.shape == (3, 10, 6) and nn.shape == (3, 10, 6, 3)
    for b in range(3):
        for q in range(10):
            cloud = points[b, : lengths[b]]
            expected = (
                naive_ball(queries[b, q], cloud, 6, 0.4) if q < query_lengths[b] else [-1] * 6
            )
            assert idx[b, q].tolist() == expected
            for k, j in enumerate(expected):
                neighbour = cloud[j] if j >= 0 else torch.zeros(3, dtype=cloud.dtype)
                torch.testing.assert_close(nn[b, q, k], neighbour)
                distance = (neighbour - queries[b, q]).square().sum() if j >= 0 else 0.0
                torch.testing.assert_close(dists[b, q, k].item(), float(distance))


def test_ball_query_pads_when_k_exceeds_the_cloud_and_passes_gradients():
    p2 = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    p1 = torch.rand(1, 2, 3, dtype=torch.float64, requires_grad=True)
    dists, idx, _ = ball_query(p1, p2, K=6, radius=10.0)
    assert idx.tolist() == [[[0, 1, 2, 3, -1, -1]] * 2]
    assert torch.autograd.gradcheck(lambda a, b: ball_query(a, b, K=6, radius=10.0)[0], (p1, p2))


def test_ball_query_far_from_the_origin_matches_a_loop():
    """float32 points 100 away from the origin: the balls are those of the exact distances."""
    generator = torch.Generator().manual_seed(2)
    points = torch.rand(1, 300, 3, generator=generator) + 100
    _, idx, _ = ball_query(points[:, :20], points, K=300, radius=0.2)
    for q in range(20):
        expected = naive_ball(points[0, q].double(), points[0].double(), 300, 0.2)
        assert idx[0, q].tolist() == expected
