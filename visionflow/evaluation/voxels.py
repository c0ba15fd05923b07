"""Voxel reconstruction scores: intersection over union of occupancy grids.

    evaluator = VoxelEvaluator()
    evaluator.process(predicted, targets)   # bool [B, R, R, R] each (CPU), per batch
    evaluation = evaluator.evaluate()       # iou: the mean over samples of each grid's IoU

Per sample the IoU of the occupied cells (:func:`visionflow.ops.voxel_iou`; two empty grids
score 1), as 3D-R2N2 reports it; the samples' rows are kept in dataset order, so evaluating in
shards and joining the pairs in order gives the same numbers.
"""

from __future__ import annotations

import torch

from visionflow.errors import DataError
from visionflow.evaluation import Evaluation
from visionflow.ops import voxel_iou


class VoxelEvaluator:
    """Scores predicted occupancy grids against ground-truth ones (see the module docstring)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._scores: list[torch.Tensor] = []  # per batch [B]

    def process(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        predictions, targets = torch.as_tensor(predictions), torch.as_tensor(targets)
        if predictions.shape != targets.shape or predictions.ndim != 4:
            raise DataError(
                f"voxel evaluator: predictions {tuple(predictions.shape)} and targets "
                f"{tuple(targets.shape)} must both be grids [B, R, R, R]"
            )
        if predictions.dtype != torch.bool or targets.dtype != torch.bool:
            raise DataError("voxel evaluator: predictions and targets must be bool occupancy")
        self._scores.append(voxel_iou(predictions, targets))

    def evaluate(self) -> Evaluation:
        scores = torch.cat(self._scores) if self._scores else torch.zeros(0)
        mean = scores.double().mean().item() if len(scores) else float("nan")
        return Evaluation({"iou": mean}, len(scores), scores[:, None] if len(scores) else None)
