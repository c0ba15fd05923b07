"""Ball query between batched, ragged point sets (PyTorch3D's ``ball_query``), chunked."""

from __future__ import annotations

import torch

from visionflow.ops.nearest import CHUNK_ELEMENTS, pair_distances


def ball_query(
    p1: torch.Tensor,
    p2: torch.Tensor,
    lengths1: torch.Tensor | None = None,
    lengths2: torch.Tensor | None = None,
    K: int = 500,  # PyTorch3D's name
    radius: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dists [B, P1, K], idx int64 [B, P1, K], nn [B, P1, K, D])``: for each point of
    ``p1 [B, P1, D]``, the first ``K`` points of ``p2 [B, P2, D]`` in index order whose squared
    L2 distance is below ``radius ** 2`` (among each cloud's first ``lengths`` points), their
    squared distances and coordinates; missing neighbours get index -1 and zeros. Queries past
    ``lengths1`` get none. Memory stays within chunks of queries (never the dense
    ``P1 x P2`` block of a large problem); ``dists`` and ``nn`` carry gradients."""
    batch, queries, _ = p1.shape
    if K < 1 or radius <= 0:
        raise ValueError(f"K / radius: need K >= 1 and radius > 0, got {K} and {radius}")
    lengths1 = _full(lengths1, batch, queries, p1.device)
    lengths2 = _full(lengths2, batch, p2.shape[1], p1.device)
    idx = _ball_index(p1.detach(), p2.detach(), lengths1, lengths2, K, radius**2)
    found = (idx >= 0)[..., None]  # [B, P1, K, 1]
    flat = idx.clamp(min=0).view(batch, -1)  # [B, P1 K]
    nn = p2.gather(1, flat[..., None].expand(-1, -1, p2.shape[2])).view(*idx.shape, -1)
    nn = nn * found
    dists = (nn - p1[:, :, None]).square().sum(-1) * found[..., 0]
    return dists, idx, nn


def _full(lengths: torch.Tensor | None, batch: int, count: int, device) -> torch.Tensor:
    if lengths is None:
        return torch.full((batch,), count, dtype=torch.int64, device=device)
    return lengths.to(device=device, dtype=torch.int64).clamp(0, count)


def _ball_index(p1, p2, lengths1, lengths2, neighbours: int, squared_radius: float):
    """int64 ``[B, P1, K]``: the first ``K`` in-ball indices of ``p2`` per query, -1 after."""
    batch, queries, _ = p1.shape
    count = p2.shape[1]
    order = torch.arange(count, device=p1.device)
    absent = order[None] >= lengths2[:, None]  # [B, P2]
    step = max(1, CHUNK_ELEMENTS // max(1, batch * count))
    chunks = [torch.empty(batch, 0, min(neighbours, count), dtype=torch.int64, device=p1.device)]
    for start in range(0, queries, step):
        squared = pair_distances(p1[:, start : start + step], p2, 2)  # [B, rows, P2]
        outside = (squared >= squared_radius) | absent[:, None]
        key = torch.where(outside, count, order)  # in-ball points keep their index
        first = key.topk(min(neighbours, count), dim=2, largest=False, sorted=True).values
        chunks.append(first.masked_fill(first == count, -1))
    idx = torch.cat(chunks, 1)
    if idx.shape[2] < neighbours:  # fewer points than K
        idx = torch.nn.functional.pad(idx, (0, neighbours - idx.shape[2]), value=-1)
    queried = torch.arange(queries, device=p1.device)[None, :, None] < lengths1[:, None, None]
    return idx.where(queried, -1)
