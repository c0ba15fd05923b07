"""Implicit-surface scores: IoU of occupancy at query points, and Chamfer / F-score of the
meshed prediction's surface.

    evaluator = OccupancyEvaluator(thresholds=(0.1, 0.3, 0.5))
    evaluator.process(
        {"occupied": bool [B, Q], "surfaces": [P_i, 3] per sample},   # predicted
        {"occupied": bool [B, Q], "surfaces": [M_i, 3] per sample},   # true
    )
    evaluation = evaluator.evaluate()   # iou, chamfer, f1@t, precision@t, recall@t, meshed

``iou`` is the volumetric IoU estimated on the query points (uniform in the cube for the
evaluation splits, as Occupancy Networks measure it); the surface scores are those of
:class:`~visionflow.evaluation.pointclouds.PointCloudEvaluator` per sample. A prediction whose
mesh is empty (no level crossing) scores precision, recall and F1 of 0 and no Chamfer distance
(left out of its mean); ``meshed`` is the fraction of samples that had a surface. Samples are
kept in order, so shards joined in dataset order give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from visionflow.errors import DataError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.pointclouds import DEFAULT_THRESHOLDS, PointCloudEvaluator
from visionflow.ops import voxel_iou


class OccupancyEvaluator:
    """Scores occupancy predictions and their meshes (see the module docstring)."""

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS):
        self.clouds = PointCloudEvaluator(thresholds)
        self.reset()

    def reset(self) -> None:
        self._scores: list[torch.Tensor] = []  # per sample [2 + 3T]: iou, chamfer, P, R, F1

    def process(self, predictions: dict[str, Any], targets: dict[str, Any]) -> None:
        occupied, truth = predictions["occupied"], targets["occupied"]
        if occupied.shape != truth.shape or occupied.ndim != 2:
            raise DataError(
                f"occupancy evaluator: predicted occupancy {tuple(occupied.shape)} and true "
                f"{tuple(truth.shape)} must both be [B, Q]"
            )
        if not len(predictions["surfaces"]) == len(targets["surfaces"]) == len(occupied):
            raise DataError("occupancy evaluator: one predicted and one true surface per sample")
        ious = voxel_iou(occupied.bool(), truth.bool())  # the same formula on [B, Q]
        for iou, surface, target in zip(ious, predictions["surfaces"], targets["surfaces"]):
            if len(surface):
                surface_scores = self.clouds.score(
                    torch.as_tensor(surface).float(), torch.as_tensor(target).float()
                )
            else:
                surface_scores = torch.zeros(1 + 3 * len(self.clouds.thresholds)).double()
                surface_scores[0] = float("nan")
            self._scores.append(torch.cat([iou.double().view(1), surface_scores]))

    def evaluate(self) -> Evaluation:
        names = ["iou", "chamfer"] + [
            f"{kind}@{t:g}"
            for kind in ("precision", "recall", "f1")
            for t in self.clouds.thresholds
        ]
        if not self._scores:
            return Evaluation({name: float("nan") for name in names + ["meshed"]}, 0)
        rows = torch.stack(self._scores)
        means = rows.nanmean(0).tolist()
        metrics = dict(zip(names, means))
        metrics["meshed"] = rows[:, 1].isfinite().double().mean().item()
        return Evaluation(metrics, len(rows), rows)
