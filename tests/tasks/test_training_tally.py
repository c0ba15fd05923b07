"""TrainingTally: the training loop's running loss and accuracy, summed across processes."""

import pytest
import torch

from visionflow.tasks.tally import TrainingTally


def test_means_over_samples_not_batches_and_reduce_is_applied():
    tally = TrainingTally()
    tally.update(
        torch.tensor(1.0),
        torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]),
        torch.tensor([0, 1, 1]),
    )
    tally.update(torch.tensor(4.0), torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    totals = tally.compute(lambda sums: sums)
    assert tally.count == 4
    assert float(totals["loss"]) == pytest.approx((1.0 * 3 + 4.0 * 1) / 4)
    assert float(totals["acc"]) == pytest.approx(3 / 4)
    doubled = tally.compute(lambda sums: sums * torch.tensor([2.0, 2.0, 2.0]))  # two equal ranks
    assert float(doubled["acc"]) == pytest.approx(3 / 4)


def test_reset_and_empty():
    tally = TrainingTally()
    with pytest.raises(ValueError, match="no batch"):
        tally.compute(lambda sums: sums)
    tally.update(torch.tensor(1.0), torch.zeros(2, 3), torch.tensor([0, 0]))
    tally.reset()
    assert tally.count == 0
