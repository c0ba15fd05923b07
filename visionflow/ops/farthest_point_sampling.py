"""Farthest point sampling of batched, ragged point sets (PyTorch3D's ``sample_farthest_points``)."""

from __future__ import annotations

import torch


def sample_farthest_points(
    points: torch.Tensor,
    lengths: torch.Tensor | None = None,
    K: int = 50,  # PyTorch3D's name
    random_start_point: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(selected [B, K, D], index int64 [B, K])``: for each cloud of ``points [B, N, D]`` (the
    first ``lengths[b]`` points; default all), ``K`` points chosen one by one, each the farthest
    (squared L2) from those chosen so far, starting at point 0 (or a random one). A cloud of
    fewer than ``K`` points gets index -1 and zero coordinates past its length. No gradient
    flows through the choice; ``selected`` is gathered from ``points`` with autograd. Runs ``K``
    steps of O(B * N) work on the device, reading nothing back."""
    batch, count, _ = points.shape
    if lengths is None:
        lengths = torch.full((batch,), count, dtype=torch.int64, device=points.device)
    if K < 1 or lengths.shape != (batch,):
        raise ValueError(f"K / lengths: need K >= 1 and lengths of shape ({batch},), got {K}")
    index = _farthest_index(
        points.detach(), lengths.to(points.device), K, random_start_point, generator
    )
    found = index >= 0  # [B, K]
    selected = points.gather(1, index.clamp(min=0)[..., None].expand(-1, -1, points.shape[2]))
    return selected * found[..., None], index


def _farthest_index(
    points: torch.Tensor,
    lengths: torch.Tensor,
    samples: int,
    random_start_point: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """int64 ``[B, samples]``: the farthest-point order of each cloud, -1 past its length."""
    batch, count, _ = points.shape
    rows = torch.arange(batch, device=points.device)
    padding = torch.arange(count, device=points.device)[None] >= lengths[:, None]  # [B, N]
    nearest_chosen = torch.full(
        (batch, count), float("inf"), dtype=points.dtype, device=points.device
    )
    nearest_chosen.masked_fill_(padding, -1.0)  # never chosen
    if random_start_point:
        draw = torch.rand(batch, generator=generator, device=points.device)
        current = (draw * lengths.clamp(min=1)).long()
    else:
        current = torch.zeros(batch, dtype=torch.int64, device=points.device)
    index = torch.empty(batch, samples, dtype=torch.int64, device=points.device)
    for step in range(min(samples, count)):
        index[:, step] = current
        squared = (points - points[rows, current][:, None]).square().sum(-1)  # [B, N]
        nearest_chosen = torch.minimum(nearest_chosen, squared)
        nearest_chosen.masked_fill_(padding, -1.0)
        current = nearest_chosen.argmax(1)
    steps = torch.arange(samples, device=points.device)[None]
    return index.masked_fill(steps >= lengths.clamp(max=count)[:, None], -1)
