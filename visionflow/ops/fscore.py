"""F-score at distance thresholds between predicted and ground-truth point clouds.

Precision at ``t``: the fraction of predicted points closer than ``t`` (Euclidean) to the ground
truth; recall: the fraction of ground-truth points closer than ``t`` to the prediction; F1 their
harmonic mean (0 where both are 0), as in Tatarchenko et al. and Mesh R-CNN's evaluation.
"""

from __future__ import annotations

import torch

from visionflow.ops.nearest import nearest_neighbor_index


def nearest_distances(
    x: torch.Tensor, y: torch.Tensor, x_lengths: torch.Tensor, y_lengths: torch.Tensor
) -> torch.Tensor:
    """Euclidean distance ``[B, N]`` from each point of ``x [B, N, 3]`` to its nearest in
    ``y [B, M, 3]`` (padding: 0; inf where ``y``'s cloud is empty)."""
    index = nearest_neighbor_index(x, y, x_lengths, y_lengths)  # [B, N]
    nearest = y.gather(1, index[..., None].expand(-1, -1, y.shape[2]))
    distance = (x - nearest).norm(dim=2).masked_fill(y_lengths[:, None] == 0, float("inf"))
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < x_lengths[:, None]
    return torch.where(valid, distance, 0)


def f_score(
    predicted: torch.Tensor,
    target: torch.Tensor,
    thresholds: tuple[float, ...],
    predicted_lengths: torch.Tensor | None = None,
    target_lengths: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``{"precision", "recall", "f1"}``, each ``[B, T]`` for ``predicted [B, N, 3]``,
    ``target [B, M, 3]`` and T ``thresholds``."""
    batch = predicted.shape[0]
    if predicted_lengths is None:
        predicted_lengths = torch.full((batch,), predicted.shape[1], device=predicted.device)
    if target_lengths is None:
        target_lengths = torch.full((batch,), target.shape[1], device=target.device)
    limits = torch.tensor(thresholds, dtype=predicted.dtype, device=predicted.device)
    scores = {}
    for name, (x, y, x_len, y_len) in {
        "precision": (predicted, target, predicted_lengths, target_lengths),
        "recall": (target, predicted, target_lengths, predicted_lengths),
    }.items():
        distances = nearest_distances(x, y, x_len, y_len)  # [B, N]
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < x_len[:, None]
        within = (distances[..., None] < limits) & valid[..., None]  # [B, N, T]
        scores[name] = within.sum(1) / x_len.clamp(min=1)[:, None]
    total = scores["precision"] + scores["recall"]
    scores["f1"] = torch.where(
        total > 0,
        2 * scores["precision"] * scores["recall"] / total.clamp_min(1e-12),
        torch.zeros_like(total),
    )
    return scores
