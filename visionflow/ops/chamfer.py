"""Chamfer distance between batched, ragged point sets, with PyTorch3D's signature and results.

    from visionflow.ops import chamfer_distance
    loss, loss_normals = chamfer_distance(x, y)          # x [B, N, 3], y [B, M, 3]

For each point of ``x`` its nearest point of ``y`` (and the reverse) is found exactly but without
gradients (:func:`visionflow.ops.nearest.nearest_neighbor_index`: KD-trees on the CPU, chunked
brute force elsewhere), then the matched distances are recomputed with autograd. The value and
the gradient are therefore those of the dense definition, while memory stays O(B * (N + M)).
``norm=2`` is the squared Euclidean distance and ``norm=1`` the L1 distance, as in PyTorch3D;
``squared=False`` (not in PyTorch3D) makes ``norm=2`` the plain Euclidean distance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionflow.ops.nearest import nearest_neighbor_index

BATCH_REDUCTIONS = ("mean", "sum", None)
POINT_REDUCTIONS = ("mean", "sum", "max", None)


def chamfer_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    x_lengths: torch.Tensor | None = None,
    y_lengths: torch.Tensor | None = None,
    x_normals: torch.Tensor | None = None,
    y_normals: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    batch_reduction: str | None = "mean",
    point_reduction: str | None = "mean",
    norm: int = 2,
    single_directional: bool = False,
    abs_cosine: bool = True,
    squared: bool = True,
):
    """Chamfer distance of ``x [B, N, D]`` to ``y [B, M, D]`` (and back unless
    ``single_directional``), as PyTorch3D's ``chamfer_distance``.

    ``x_lengths``/``y_lengths`` int64 ``[B]``: points per cloud of a padded batch (default: all);
    ``x_normals [B, N, D]``/``y_normals [B, M, D]`` add the normal term ``1 - |cos|`` between each
    point's normal and its nearest neighbour's (``1 - cos`` when ``abs_cosine`` is false);
    ``weights [B]`` non-negative per-cloud weights. ``point_reduction`` ``mean | sum | max | None``
    reduces over points (None: per-point tensors), ``batch_reduction`` ``mean | sum | None`` over
    clouds. Returns ``(loss, loss_normals)``; ``loss_normals`` is None without normals. With
    ``point_reduction=None`` each is a pair ``(x->y [B, N], y->x [B, M])`` (one tensor when
    ``single_directional``). ``squared=False`` with ``norm=2``: Euclidean, not squared, distances
    (gradient 0 where two points coincide); ``norm=1`` ignores it."""
    _check_arguments(x, y, x_normals, y_normals, weights, batch_reduction, point_reduction, norm)
    x_lengths = _lengths(x, x_lengths, "x_lengths")
    y_lengths = _lengths(y, y_lengths, "y_lengths")
    x, x_normals = (_zero_padding(t, x_lengths) for t in (x, x_normals))
    y, y_normals = (_zero_padding(t, y_lengths) for t in (y, y_normals))
    if weights is not None and float(weights.sum()) == 0.0:
        zero = (x.sum((1, 2)) * weights) * 0.0  # [B]
        return (zero.sum(), zero.sum()) if batch_reduction is not None else (zero, zero)
    options = (weights, batch_reduction, point_reduction, norm, abs_cosine, squared)
    loss_x, normals_x = _one_direction(x, y, x_lengths, y_lengths, x_normals, y_normals, *options)
    if single_directional:
        return loss_x, normals_x
    loss_y, normals_y = _one_direction(y, x, y_lengths, x_lengths, y_normals, x_normals, *options)
    if point_reduction is None:
        return (loss_x, loss_y), ((normals_x, normals_y) if normals_x is not None else None)
    combine = torch.maximum if point_reduction == "max" else torch.add
    return combine(loss_x, loss_y), (
        combine(normals_x, normals_y) if normals_x is not None else None
    )


def _one_direction(
    x,
    y,
    x_lengths,
    y_lengths,
    x_normals,
    y_normals,
    weights,
    batch_reduction,
    point_reduction,
    norm,
    abs_cosine,
    squared,
):
    """``(distance, normal term)`` from each point of ``x`` to its nearest point of ``y``,
    reduced as asked; the normal term is None without normals."""
    batch, points, _ = x.shape
    index = nearest_neighbor_index(x, y, x_lengths, y_lengths, norm)  # [B, N]
    valid = torch.arange(points, device=x.device)[None, :] < x_lengths[:, None]  # [B, N]
    valid = valid & (y_lengths[:, None] > 0)
    nearest = _gather(y, index)  # [B, N, D]
    difference = x - nearest
    distance = difference.square().sum(-1) if norm == 2 else difference.abs().sum(-1)
    if norm == 2 and not squared:
        distance = _euclidean(distance)
    distance = distance * valid
    normal_term = None
    if x_normals is not None and y_normals is not None:
        cosine = F.cosine_similarity(x_normals, _gather(y_normals, index), dim=2, eps=1e-6)
        normal_term = (1 - (cosine.abs() if abs_cosine else cosine)) * valid
    if weights is not None:
        distance = distance * weights.view(batch, 1)
        normal_term = normal_term * weights.view(batch, 1) if normal_term is not None else None
    return (
        _reduce(distance, x_lengths, weights, batch_reduction, point_reduction),
        _reduce(normal_term, x_lengths, weights, batch_reduction, point_reduction)
        if normal_term is not None
        else None,
    )


def _zero_padding(points: torch.Tensor | None, lengths: torch.Tensor) -> torch.Tensor | None:
    """``points [B, N, D]`` with 0 past each cloud's length, so that whatever fills the padding
    (inf, NaN) reaches neither the loss nor the gradient (PyTorch3D never reads it)."""
    if points is None:
        return None
    real = torch.arange(points.shape[1], device=points.device)[None, :] < lengths[:, None]
    return torch.where(real[..., None], points, 0)


def _euclidean(squared: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of squared distances, with gradient 0 (not NaN) where a distance is 0."""
    positive = squared > 0
    return torch.where(positive, squared.where(positive, 1).sqrt(), 0)


def _gather(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``points [B, M, D]`` at ``index [B, N]`` -> ``[B, N, D]``."""
    if points.shape[1] == 0:
        return points.new_zeros(*index.shape, points.shape[2])
    return points.gather(1, index[..., None].expand(-1, -1, points.shape[2]))


def _reduce(values, lengths, weights, batch_reduction, point_reduction):
    """``values [B, N]`` reduced over points, then over the batch."""
    if point_reduction is None:
        return values
    if point_reduction == "max":
        values = values.max(1).values if values.shape[1] else values.sum(1)  # [B]
    else:
        values = values.sum(1)  # [B]
        if point_reduction == "mean":
            values = values / lengths.clamp(min=1)
    if batch_reduction is None:
        return values
    total = values.sum()
    if batch_reduction == "mean":
        total = total / (weights.sum() if weights is not None else max(values.shape[0], 1))
    return total


def _lengths(points: torch.Tensor, lengths: torch.Tensor | None, name: str) -> torch.Tensor:
    batch, count, _ = points.shape
    if lengths is None:
        return torch.full((batch,), count, dtype=torch.int64, device=points.device)
    if lengths.shape != (batch,):
        raise ValueError(f"{name}: expected shape ({batch},), got {tuple(lengths.shape)}")
    return lengths.to(device=points.device, dtype=torch.int64).clamp(0, count)


def _check_arguments(
    x, y, x_normals, y_normals, weights, batch_reduction, point_reduction, norm
) -> None:
    """ValueError naming the first bad argument (PyTorch3D raises ValueError too)."""
    problems = [
        (
            x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2],
            f"x and y: expected [B, N, D] and [B, M, D], got {tuple(x.shape)} and {tuple(y.shape)}",
        ),
        (
            batch_reduction not in BATCH_REDUCTIONS,
            f"batch_reduction: must be one of mean, sum or None, got {batch_reduction!r}",
        ),
        (
            point_reduction not in POINT_REDUCTIONS,
            f"point_reduction: must be one of mean, sum, max or None, got {point_reduction!r}",
        ),
        (
            point_reduction is None and batch_reduction is not None,
            "batch_reduction: must be None when point_reduction is None",
        ),
        (norm not in (1, 2), f"norm: must be 1 or 2, got {norm!r}"),
        (
            point_reduction == "max" and (x_normals is not None or y_normals is not None),
            "x_normals, y_normals: must be None when point_reduction is 'max'",
        ),
        (
            x_normals is not None and x_normals.shape != x.shape,
            f"x_normals: expected shape {tuple(x.shape)}",
        ),
        (
            y_normals is not None and y_normals.shape != y.shape,
            f"y_normals: expected shape {tuple(y.shape)}",
        ),
        (
            weights is not None and weights.shape != (x.shape[0],),
            f"weights: expected shape ({x.shape[0]},)",
        ),
    ]
    for failed, message in problems:
        if failed:
            raise ValueError(message)
    if weights is not None and bool((weights < 0).any()):
        raise ValueError("weights: must be >= 0")
