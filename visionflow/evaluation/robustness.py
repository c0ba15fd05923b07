"""Robustness scoring for the ``adversarial`` stage: clean accuracy, robust accuracy per epsilon
and attack success rate, from integer counts (so batches and shards merge exactly).

    evaluator = RobustnessEvaluator(epsilons=[0.0, 0.05, 0.1])
    evaluator.process(predictions [E, B] int64 (class per epsilon), targets [B])   # per batch
    evaluator.process(predictions, targets, goals=[B])                              # targeted
    evaluation = evaluator.evaluate()   # clean_acc, acc@eps=0.05, success@eps=0.05, ...

``predictions[0]`` are the clean predictions. The success rate at an epsilon counts, among the
images classified right when clean, those the attack turns wrong (untargeted) or into their goal
class (targeted). ``details`` holds ``{"epsilons", "accuracy", "success"}`` lists for plots.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from visionflow.errors import DataError
from visionflow.evaluation import Evaluation


def epsilon_key(epsilon: float) -> str:
    """``0.1 -> "eps=0.1"``: the suffix of the per-epsilon metric names."""
    return f"eps={epsilon:g}"


class RobustnessEvaluator:
    """Counts over ``(predictions [E, B], targets [B])`` pairs for the ``E`` epsilons given."""

    def __init__(self, epsilons: Sequence[float]):
        self.epsilons = [float(e) for e in epsilons]
        self.reset()

    def reset(self) -> None:
        self._correct = torch.zeros(len(self.epsilons), dtype=torch.int64)  # [E]
        self._fooled = torch.zeros(len(self.epsilons), dtype=torch.int64)  # [E]
        self._clean_correct = 0
        self._count = 0

    def process(
        self, predictions: torch.Tensor, targets: torch.Tensor, goals: torch.Tensor | None = None
    ) -> None:
        predictions = torch.as_tensor(predictions).to(torch.int64)
        targets = torch.as_tensor(targets).to(torch.int64)
        if predictions.shape != (len(self.epsilons), len(targets)):
            raise DataError(
                f"robustness evaluator: predictions {tuple(predictions.shape)} do not "
                f"fit {len(self.epsilons)} epsilons x {len(targets)} targets"
            )
        right = predictions == targets  # [E, B]
        clean = right[0]
        fooled = predictions == goals if goals is not None else ~right
        self._correct += right.sum(dim=1)
        self._fooled += (fooled & clean).sum(dim=1)
        self._clean_correct += int(clean.sum())
        self._count += len(targets)

    def evaluate(self) -> Evaluation:
        """Accuracy per epsilon (NaN without images) and success rate (NaN without an image
        classified right when clean: a rate over no image)."""
        accuracy = _rates(self._correct, self._count)
        success = _rates(self._fooled, self._clean_correct)
        metrics = {"clean_acc": accuracy[0]}
        for epsilon, acc, rate in zip(self.epsilons, accuracy, success):
            metrics[f"acc@{epsilon_key(epsilon)}"] = acc
            metrics[f"success@{epsilon_key(epsilon)}"] = rate
        return Evaluation(
            metrics,
            self._count,
            {"epsilons": self.epsilons, "accuracy": accuracy, "success": success},
        )


def _rates(counts: torch.Tensor, total: int) -> list[float]:
    """``counts [E] / total`` as floats; NaN each when ``total`` is 0."""
    return (counts.double() / total).tolist() if total else [float("nan")] * len(counts)
