"""k-nearest neighbours against a brute-force numpy reference, ties included."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from visionflow.errors import SpecError
from visionflow.tasks.knn import KNearestNeighbors


def brute_force(train_x, train_y, queries, k, distance):
    """One query at a time: stable argsort (ties: lower index), vote, ties: nearest class first."""
    predictions = []
    for query in queries:
        difference = train_x - query
        if distance == "l1":
            distances = np.abs(difference).sum(axis=1)
        else:
            distances = np.sqrt((difference**2).sum(axis=1))
        nearest = train_y[np.argsort(distances, kind="stable")[:k]]
        counts = Counter(nearest.tolist())
        best = max(counts.values())
        predictions.append(next(label for label in nearest if counts[label] == best))
    return np.array(predictions)


def integer_data(seed: int, n: int = 60, m: int = 25, dim: int = 3, classes: int = 4):
    """Small integer coordinates: exact distances, with many ties in distance and in votes."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 4, (n, dim)).astype(np.float32),
        rng.integers(0, classes, n),
        rng.integers(0, 4, (m, dim)).astype(np.float32),
    )


@pytest.mark.parametrize("distance", ["l1", "l2"])
@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_matches_brute_force_with_ties(k, distance):
    train_x, train_y, queries = integer_data(seed=k)
    knn = KNearestNeighbors(k=k, distance=distance, max_chunk_elements=60 * 7)  # 7-query chunks
    knn.fit(torch.from_numpy(train_x), torch.from_numpy(train_y))
    predicted = knn.predict(torch.from_numpy(queries)).numpy()
    np.testing.assert_array_equal(predicted, brute_force(train_x, train_y, queries, k, distance))


def test_matches_brute_force_on_random_pixels():
    rng = np.random.default_rng(0)
    train_x, train_y = rng.normal(size=(200, 48)).astype(np.float32), rng.integers(0, 10, 200)
    queries = rng.normal(size=(50, 48)).astype(np.float32)
    knn = KNearestNeighbors(k=5, distance="l1")
    knn.fit(torch.from_numpy(train_x), torch.from_numpy(train_y))
    np.testing.assert_array_equal(
        knn.predict(torch.from_numpy(queries)).numpy(),
        brute_force(train_x, train_y, queries, 5, "l1"),
    )


def test_vote_tie_goes_to_the_nearest_class():
    train = torch.tensor([[0.0], [1.0], [-3.0], [4.0]])
    labels = torch.tensor([2, 0, 0, 2])
    knn = KNearestNeighbors(k=4).fit(train, labels)
    assert knn.predict(torch.tensor([[0.9], [0.1]])).tolist() == [0, 2]


def test_equal_distances_prefer_the_lower_training_index():
    train = torch.tensor([[1.0], [-1.0], [1.0]])
    knn = KNearestNeighbors(k=1).fit(train, torch.tensor([5, 3, 4]))
    assert knn.predict(torch.tensor([[0.0]])).tolist() == [5]


def test_accuracy_and_one_nn_memorizes_the_training_set():
    train_x, train_y, _ = integer_data(seed=1, n=30)
    unique = np.unique(train_x, axis=0, return_index=True)[1]
    x, y = torch.from_numpy(train_x[unique]), torch.from_numpy(train_y[unique])
    knn = KNearestNeighbors(k=1).fit(x, y)
    assert knn.accuracy(x, y) == 1.0
    assert knn.accuracy(x, (y + 1) % 4) == 0.0


def test_clear_errors():
    with pytest.raises(SpecError, match="k: must be >= 1"):
        KNearestNeighbors(k=0)
    with pytest.raises(SpecError, match="k: 5 exceeds the 2 training samples"):
        KNearestNeighbors(k=5).fit(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))
    knn = KNearestNeighbors().fit(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"expected queries \[M, 3\], got \(4, 2\)"):
        knn.predict(torch.zeros(4, 2))
