"""The training loop's running loss and accuracy: a few in-place device ops per step, no host
sync, none of a metric object's Python bookkeeping."""

from __future__ import annotations

from collections.abc import Callable

import torch


class TrainingTally:
    """Sum of per-sample loss and of top-1 hits over a training epoch, kept on the batches' device
    (float32: exact counts up to 2**24 samples per epoch and process) with the sample count on the
    host. ``compute(reduce)`` sums across processes with ``reduce`` (e.g. the strategy's)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._sums: torch.Tensor | None = None  # [2]: loss sum, hits
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """One batch: ``loss`` its mean (scalar), ``logits`` [B, K], ``targets`` [B]."""
        batch = len(targets)
        hits = (logits.detach().argmax(dim=-1) == targets).sum()
        values = torch.stack([loss.detach().float() * batch, hits.float()])
        if self._sums is None:
            self._sums = values
        else:
            self._sums.add_(values)
        self._count += batch

    def compute(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": mean per sample, "acc": top-1}`` over every process (0-d tensors)."""
        if self._sums is None:
            raise ValueError("TrainingTally.compute: no batch was added since the last reset")
        count = torch.tensor([float(self._count)], device=self._sums.device)
        totals = reduce(torch.cat([self._sums, count]))
        return {"loss": totals[0] / totals[2], "acc": totals[1] / totals[2]}
