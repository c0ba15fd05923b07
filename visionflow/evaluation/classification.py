"""Classification scoring for the evaluation contract: accuracy, top-k accuracy, loss, confusion.

    evaluator = ClassificationEvaluator(num_classes=10)
    evaluator.process({"top_k": top5_indices, "loss": batch_mean_loss}, targets)  # per batch
    evaluation = evaluator.evaluate()   # metrics acc, acc_top5 (K > 5), loss; details [K, K]

Counts are integers and the loss is summed in float64 batch by batch, so the result depends only
on the pairs and their order, never on which process produced them.
"""

from __future__ import annotations

from typing import Any

import torch

from visionflow.errors import DataError
from visionflow.evaluation import Evaluation


def confusion_counts(
    truth: torch.Tensor, predicted: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """[K, K] int64 counts of (true class, predicted class) pairs, rows = true class, from int64
    labels ``truth`` and ``predicted`` [N], every label in ``0..K-1``."""
    pairs = truth * num_classes + predicted
    return torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)


class ClassificationEvaluator:
    """Scores ``predictions = {"top_k": [B, k] int64 class indices, best first, "loss": float
    (the batch's mean loss)}`` against ``targets`` [B] int64; ``k >= top_k`` when K > ``top_k``."""

    def __init__(self, num_classes: int, top_k: int = 5):
        self.num_classes = num_classes
        self.top_k = top_k
        self.reset()

    def reset(self) -> None:
        self._confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self._top_k_correct = 0
        self._loss_sum = 0.0
        self._count = 0

    def process(self, predictions: dict[str, Any], targets: torch.Tensor) -> None:
        ranked, targets = self._checked(predictions["top_k"], targets)
        self._confusion += confusion_counts(targets, ranked[:, 0], self.num_classes)
        self._top_k_correct += int((ranked[:, : self.top_k] == targets[:, None]).any(dim=1).sum())
        self._loss_sum += float(predictions["loss"]) * len(targets)
        self._count += len(targets)

    def _checked(self, top_k: Any, targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ranked [B, k], targets [B])`` int64, or a DataError naming the bad input: a shape
        that does not fit, fewer than ``min(top_k, K)`` ranked classes, a class outside 0..K-1."""
        ranked = torch.as_tensor(top_k).to(torch.int64)  # [B, k]
        targets = torch.as_tensor(targets).to(torch.int64)  # [B]
        needed = min(self.top_k, self.num_classes)
        if ranked.ndim != 2 or ranked.shape[0] != targets.shape[0] or ranked.shape[1] < needed:
            raise DataError(
                f"classification evaluator: top_k {tuple(ranked.shape)} does not fit "
                f"targets {tuple(targets.shape)}; expected [B, k >= {needed}] and [B]"
            )
        for name, labels in (("target", targets), ("predicted class", ranked)):
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise DataError(
                    f"classification evaluator: a {name} is outside 0..{self.num_classes - 1}"
                )
        return ranked, targets

    def evaluate(self) -> Evaluation:
        """``acc`` (top-1), ``acc_top5`` (when K > top_k), ``loss`` (mean per sample); NaN without
        samples. ``details``: the confusion matrix [K, K], rows = true class."""
        count = self._count
        metrics = {
            "acc": self._confusion.trace().item() / count if count else float("nan"),
            "loss": self._loss_sum / count if count else float("nan"),
        }
        if self.num_classes > self.top_k:
            metrics[f"acc_top{self.top_k}"] = self._top_k_correct / count if count else float("nan")
        return Evaluation(metrics, count, self._confusion.clone())
