"""voxel_downsample against a numpy reference: group the points by voxel, average per voxel."""

from __future__ import annotations

import numpy as np
import pytest

from visionflow.datamodules.mesh_io import read_point_cloud
from visionflow.errors import DataError, SpecError
from visionflow.mesh_files import voxel_downsample


def reference(points, voxel_size, normals, labels):
    """Per occupied voxel ``floor((p - min) / voxel_size + 1/2)``: the mean point, the mean
    normal at unit length, the most frequent label (the smallest on a tie)."""
    keys = np.floor((points - points.min(0)) / voxel_size + 0.5).astype(np.int64)
    _, voxel_of = np.unique(keys, axis=0, return_inverse=True)
    voxel_of = voxel_of.ravel()
    count = np.bincount(voxel_of)[:, None]
    mean_points = np.zeros((len(count), 3))
    np.add.at(mean_points, voxel_of, points)
    mean_normals = np.zeros((len(count), 3))
    np.add.at(mean_normals, voxel_of, normals)
    votes = np.zeros((len(count), labels.max() + 1), np.int64)
    np.add.at(votes, (voxel_of, labels), 1)
    unit = mean_normals / np.linalg.norm(mean_normals, axis=1, keepdims=True)
    return mean_points / count, unit, votes.argmax(1)


def as_rows(*columns):
    """The rows ``[M, 7]`` of points, normals, label, sorted: compared as sets."""
    rows = np.concatenate([np.asarray(c, np.float64).reshape(len(c), -1) for c in columns], 1)
    return rows[np.lexsort(rows.T[::-1])]


def clustered_cloud(seed: int, count: int = 600):
    """Points around a few centres (so voxels hold several points), random unit normals, and
    labels from three classes."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1, 1, (8, 3))
    points = centres[rng.integers(0, 8, count)] + rng.normal(0, 0.05, (count, 3))
    normals = rng.normal(size=(count, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return points.astype(np.float32), normals.astype(np.float32), rng.integers(0, 3, count)


@pytest.mark.parametrize("seed, voxel_size", [(0, 0.05), (1, 0.1), (2, 0.37)])
def test_matches_the_reference(seed, voxel_size):
    points, normals, labels = clustered_cloud(seed)
    result = voxel_downsample(points, voxel_size, normals, labels)
    expected = reference(points.astype(np.float64), voxel_size, normals, labels)
    assert 10 < len(result.points) < len(points)
    assert result.points.dtype == np.float32 and result.labels.dtype == np.int64
    np.testing.assert_allclose(as_rows(*result), as_rows(*expected), atol=1e-5)


def test_points_alone_take_the_same_grid_as_with_labels():
    points, normals, labels = clustered_cloud(3)
    alone = voxel_downsample(points, 0.1)
    assert alone.normals is None and alone.labels is None
    with_labels = voxel_downsample(points, 0.1, labels=labels).points
    np.testing.assert_allclose(as_rows(alone.points), as_rows(with_labels), atol=1e-6)


def test_a_tie_goes_to_the_smallest_label_and_opposite_normals_to_zero():
    points = np.array([[0, 0, 0], [0.01, 0, 0], [5, 5, 5]], np.float32)
    normals = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0]], np.float32)
    result = voxel_downsample(points, 1.0, normals, np.array([7, 2, 7]))
    rows = as_rows(*result)
    np.testing.assert_allclose(rows[0], [0.005, 0, 0, 0, 0, 0, 2], atol=1e-6)
    np.testing.assert_allclose(rows[1], [5, 5, 5, 1, 0, 0, 7])


def test_empty_and_single_point_clouds():
    empty = voxel_downsample(np.zeros((0, 3)), 0.1, np.zeros((0, 3)), np.zeros(0, np.int64))
    assert empty.points.shape == (0, 3) and empty.normals.shape == (0, 3)
    assert empty.labels.shape == (0,)
    single = voxel_downsample([[1.0, 2.0, 3.0]], 0.1, labels=np.array([4]))
    np.testing.assert_array_equal(single.points, [[1, 2, 3]])
    np.testing.assert_array_equal(single.labels, [4])


def test_a_real_scan_matches_the_reference(shared_data):
    points = read_point_cloud(shared_data / "pointclouds" / "bunny_pc.ply")
    labels = (points[:, 1] > np.median(points[:, 1])).astype(np.int64)
    normals = np.tile(np.float32([0, 1, 0]), (len(points), 1))
    voxel_size = float(np.ptp(points, 0).max()) / 20
    result = voxel_downsample(points, voxel_size, normals, labels)
    expected = reference(points.astype(np.float64), voxel_size, normals, labels)
    assert len(result.points) < len(points) / 2
    np.testing.assert_allclose(as_rows(*result), as_rows(*expected), atol=1e-5)


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"voxel_size": 0}, SpecError, "voxel_size: must be a finite number > 0, got 0"),
        ({"voxel_size": -0.1}, SpecError, "voxel_size: must be a finite number > 0"),
        ({"voxel_size": float("nan")}, SpecError, "voxel_size: must be a finite number > 0"),
        ({"voxel_size": "0.1"}, SpecError, "voxel_size: must be a finite number > 0"),
        ({"voxel_size": 1e-12}, SpecError, "voxel_size: 1e-12 is too small for a cloud 1 wide"),
        ({"points": np.zeros((4, 2))}, DataError, r"points: expected an array \[N, 3\]"),
        ({"points": [[0, 0, 0], [1, 1, np.nan]]}, DataError, "points: point 1 has a NaN"),
        ({"normals": np.zeros((3, 3))}, DataError, r"normals: expected shape \(2, 3\)"),
        ({"labels": np.zeros(2)}, DataError, r"labels: expected integers \[2\]"),
        ({"labels": np.zeros(3, np.int64)}, DataError, r"labels: expected integers \[2\]"),
    ],
)
def test_bad_arguments_name_themselves(arguments, error, message):
    given = {"points": [[0, 0, 0], [1, 1, 1]], "voxel_size": 0.5, **arguments}
    with pytest.raises(error, match=message):
        voxel_downsample(**given)
