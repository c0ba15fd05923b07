"""k-nearest-neighbour classification: the non-parametric baseline of CS231n.

    knn = KNearestNeighbors(k=5, distance="l1").fit(train_pixels, train_labels)   # [N, D], [N]
    predictions = knn.predict(test_pixels)                                        # [M, D] -> [M]

Distances are computed for a chunk of queries at a time (``[m, N]`` with ``m * N`` at most
``max_chunk_elements``), so memory stays bounded however many queries there are.

Deterministic ties:
- neighbours are the ``k`` training points of smallest distance, equal distances ordered by the
  lower training index;
- the vote goes to the class with the most neighbours; among classes with equally many, to the one
  whose nearest member comes first in that neighbour order (so ``k=2`` with two classes is 1-NN).
"""

from __future__ import annotations

from typing import Literal

import torch

from visionflow.errors import SpecError


class KNearestNeighbors:
    """Majority vote of the ``k`` nearest training points under the L1 or L2 distance."""

    def __init__(
        self, k: int = 1, distance: Literal["l1", "l2"] = "l2", max_chunk_elements: int = 2**24
    ):
        if k < 1:
            raise SpecError(f"k: must be >= 1, got {k}")
        if distance not in ("l1", "l2"):
            raise SpecError(f"distance: expected 'l1' or 'l2', got {distance!r}")
        self.k = k
        self.distance = distance
        self.max_chunk_elements = max_chunk_elements
        self.features: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> KNearestNeighbors:
        """Remember the training set: ``features [N, D]``, ``labels [N]`` int64 class indices."""
        if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
            raise ValueError(
                f"fit: expected features [N, D] and labels [N], got "
                f"{tuple(features.shape)} and {tuple(labels.shape)}"
            )
        if self.k > len(features):
            raise SpecError(f"k: {self.k} exceeds the {len(features)} training samples")
        self.features = features.float()
        self.labels = labels.to(features.device, torch.int64)
        return self

    def predict(self, queries: torch.Tensor) -> torch.Tensor:
        """Predicted labels ``[M]`` for ``queries [M, D]`` (on the training data's device)."""
        if self.features is None:
            raise RuntimeError("predict: call fit(features, labels) first")
        if queries.ndim != 2 or queries.shape[1] != self.features.shape[1]:
            raise ValueError(
                f"predict: expected queries [M, {self.features.shape[1]}], "
                f"got {tuple(queries.shape)}"
            )
        queries = queries.to(self.features.device, torch.float32)
        rows = max(1, self.max_chunk_elements // len(self.features))
        return torch.cat([self._predict_chunk(chunk) for chunk in queries.split(rows)])

    def accuracy(self, queries: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of ``queries [M, D]`` whose prediction equals ``labels [M]``."""
        predictions = self.predict(queries)
        return float((predictions == labels.to(predictions.device)).float().mean())

    def _predict_chunk(self, queries: torch.Tensor) -> torch.Tensor:
        p = 1.0 if self.distance == "l1" else 2.0
        distances = torch.cdist(queries, self.features, p=p)  # [m, N]
        neighbours = nearest_indices(distances, self.k)  # [m, k]
        return vote(self.labels[neighbours])  # [m]


def nearest_indices(distances: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[m, k]`` of the ``k`` smallest of each row of ``distances [m, N]``, ordered by
    (distance, index): exact tie-breaking without sorting whole rows."""
    kth = distances.topk(k, dim=1, largest=False).values[:, -1:]  # [m, 1]
    index = torch.arange(distances.shape[1], device=distances.device).expand_as(distances)
    # every point closer than the k-th is chosen; among those at the k-th distance, lowest index
    key = torch.where(distances < kth, -1, torch.where(distances == kth, index, distances.shape[1]))
    chosen = key.topk(k, dim=1, largest=False).indices.sort(dim=1).values  # [m, k] by index
    order = distances.gather(1, chosen).sort(dim=1, stable=True).indices  # then by distance
    return chosen.gather(1, order)


def vote(neighbour_labels: torch.Tensor) -> torch.Tensor:
    """Majority label ``[m]`` of ``neighbour_labels [m, k]`` (nearest first); ties go to the class
    whose first neighbour is nearest."""
    m, k = neighbour_labels.shape
    num_classes = int(neighbour_labels.max()) + 1
    ones = torch.ones_like(neighbour_labels)
    votes = torch.zeros(m, num_classes, dtype=torch.int64, device=neighbour_labels.device)
    votes.scatter_add_(1, neighbour_labels, ones)  # [m, C]
    rank = torch.arange(k, device=neighbour_labels.device).expand(m, k)
    first = torch.full_like(votes, k).scatter_reduce_(1, neighbour_labels, rank, "amin")
    return (votes * (k + 1) - first).argmax(dim=1)  # most votes, then nearest first member
