"""The evaluation contract: one way to score a task, in one process or in shards on many.

A task that the ``evaluate`` stage (and ``visionflow eval run``) can score has two methods:

    predictions, targets = task.evaluation_step(batch)   # plain CPU data that pickles
    evaluator = task.make_evaluator()                     # an Evaluator, below

and the pipeline feeds the evaluator every batch's pair *in dataset order*, whichever process made
them:

    evaluator.reset()
    for predictions, targets in pairs:                    # shard 0's batches, then shard 1's, ...
        evaluator.process(predictions, targets)
    evaluation = evaluator.evaluate()                     # -> Evaluation

A task may also give ``save_evaluation(evaluation, directory) -> [paths]`` to draw what the
numbers alone do not show (a confusion matrix, precision-recall curves).

A shard is a run of whole batches of the unsharded loader, so every batch, every pair and the
order they reach the evaluator are those of a single-process evaluation: the numbers are equal,
not close. Evaluators, one module each in this package: ``classification`` (accuracy, top-5,
loss, confusion matrix), ``detection`` (the detection task's COCO box AP), ``coco`` (COCO/LVIS on
hotcoco), ``semantic`` (mIoU), ``panoptic`` (PQ) and ``voc`` (Pascal VOC AP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Evaluation:
    """What an evaluator found: ``metrics`` by short name (``acc``, ``mAP``; the pipeline prefixes
    the split), the samples scored, and ``details`` for artifacts (a confusion matrix, a
    ``CocoResult``), which may be None."""

    metrics: dict[str, float]
    num_samples: int
    details: Any = None


class Evaluator(Protocol):
    """Accumulates ``(predictions, targets)`` pairs, one per batch; scores them once."""

    def reset(self) -> None: ...

    def process(self, predictions: Any, targets: Any) -> None: ...

    def evaluate(self) -> Evaluation: ...


@runtime_checkable
class EvaluableTask(Protocol):
    """A task the ``evaluate`` stage can score (see the module docstring)."""

    def evaluation_step(self, batch: Any) -> tuple[Any, Any]: ...

    def make_evaluator(self) -> Evaluator: ...


#: evaluators re-exported here, loaded on first use: they import torch, which ``visionflow eval
#: coco`` (whose modules live in this package) must not pay for at start-up
_LAZY = {
    "RobustnessEvaluator": "robustness",
    "OccupancyEvaluator": "occupancy",
    "PointCloudEvaluator": "pointclouds",
    "VideoAccuracyEvaluator": "video",
    "VoxelEvaluator": "voxels",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"visionflow.evaluation.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'visionflow.evaluation' has no attribute {name!r}")
