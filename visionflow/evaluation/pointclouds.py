"""Point-cloud reconstruction scores: Chamfer distance and F-score at distance thresholds.

    evaluator = PointCloudEvaluator(thresholds=(0.1, 0.3, 0.5))
    evaluator.process(predictions, targets)   # lists of float32 [P_i, 3] and [M_i, 3] (CPU)
    evaluation = evaluator.evaluate()         # chamfer, f1@0.1, precision@0.1, recall@0.1, ...

Per sample: ``chamfer`` is the squared-L2 Chamfer distance, point-mean in both directions and
summed (PyTorch3D's ``chamfer_distance`` for one cloud); ``f1@t`` with precision and recall of
nearest Euclidean distances within ``t`` (:func:`visionflow.ops.f_score`). The metrics are the
means over samples. Samples are kept in order, so evaluating in shards and joining the pairs in
dataset order gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from visionflow.errors import DataError
from visionflow.evaluation import Evaluation
from visionflow.ops import chamfer_distance, f_score

DEFAULT_THRESHOLDS = (0.1, 0.3, 0.5)


class PointCloudEvaluator:
    """Scores predicted point clouds against ground-truth ones (see the module docstring)."""

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS):
        if not thresholds or any(t <= 0 for t in thresholds):
            raise ValueError(f"thresholds: need positive distances, got {list(thresholds)}")
        self.thresholds = tuple(float(t) for t in thresholds)
        self.reset()

    def reset(self) -> None:
        self._scores: list[torch.Tensor] = []  # per sample [1 + 3T]: chamfer, P, R, F1

    def process(self, predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        if len(predictions) != len(targets):
            raise DataError(
                f"point-cloud evaluator: {len(predictions)} predictions for {len(targets)} targets"
            )
        for predicted, target in zip(predictions, targets):
            self._scores.append(
                self.score(_cloud(predicted, "prediction"), _cloud(target, "target"))
            )

    def score(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``[1 + 3T]``: chamfer, then precision, recall and F1 at each threshold."""
        predicted, target = predicted[None].double(), target[None].double()
        chamfer, _ = chamfer_distance(predicted, target)
        scores = f_score(predicted, target, self.thresholds)
        return torch.cat(
            [chamfer.view(1), scores["precision"][0], scores["recall"][0], scores["f1"][0]]
        )

    def evaluate(self) -> Evaluation:
        count = len(self._scores)
        names = ["chamfer"] + [
            f"{kind}@{t:g}" for kind in ("precision", "recall", "f1") for t in self.thresholds
        ]
        means = torch.stack(self._scores).mean(0).tolist() if count else [float("nan")] * len(names)
        return Evaluation(
            dict(zip(names, means)), count, torch.stack(self._scores) if count else None
        )


def _cloud(points: torch.Tensor, what: str) -> torch.Tensor:
    points = torch.as_tensor(points)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise DataError(
            f"point-cloud evaluator: a {what} has shape {tuple(points.shape)}; "
            f"expected a non-empty [N, 3]"
        )
    if not torch.isfinite(points).all():
        raise DataError(f"point-cloud evaluator: a {what} has NaN or infinite coordinates")
    return points
