"""Stages that score or apply a trained model without training it: ``evaluate`` and ``predict``.

    stages:
      - evaluate: {checkpoint: runs/shapes_fasterrcnn/<time>/checkpoints/last.ckpt, shards: 4}
      - predict: {checkpoint: ...}

Both load ``checkpoint`` (a Lightning checkpoint of the same task, read with
``weights_only=True``) into the task, or, without one, the run's best checkpoint when this run
has trained, else keep the task as built (e.g. from ``net_args.weights``). ``evaluate`` scores the
test (or val) split through the task's evaluator in ``shards`` shards (default: one, or
``resources.num_workers`` with ``backend: ray``, each on a Ray worker; see
:mod:`visionflow.pipelines.evaluation`) and writes ``evaluation_<split>.json``; ``predict`` runs
the predict loop, in which a task writes its own predictions file (the detection task: COCO
results JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from visionflow.errors import CheckpointError
from visionflow.pipelines.build import build_trainer
from visionflow.pipelines.evaluation import check_shard_count, evaluate_split
from visionflow.pipelines.stages import StageContext, read_task_state
from visionflow.registry import STAGES
from visionflow.rundir import atomic_write_json


def check_evaluate_arguments(shards: int | None = None, **_: Any) -> None:
    """The stage's ranges, checked by the runner before the run directory exists."""
    if shards is not None:
        check_shard_count(shards)


@STAGES.register(
    "evaluate",
    description="score a checkpoint (or the run's best) on the test or "
    "val split, in shards (on Ray workers with backend: ray)",
    check=check_evaluate_arguments,
)
def evaluate(
    context: StageContext,
    checkpoint: str | None = None,
    split: Literal["test", "val"] = "test",
    shards: int | None = None,
) -> dict[str, float]:
    checkpoint_path = load_weights(context, checkpoint)
    resources = context.spec.resources
    num_shards = (
        shards
        if shards is not None
        else (resources.num_workers if resources.backend == "ray" else 1)
    )
    evaluation, outputs = evaluate_split(context, split, num_shards, context.evaluation_backend)
    details = evaluation.details
    atomic_write_json(
        context.run_dir.path / f"evaluation_{split}.json",
        {
            "split": split,
            "checkpoint": str(checkpoint_path) if checkpoint_path else None,
            "metrics": evaluation.metrics,
            "num_samples": evaluation.num_samples,
            "shards": [output.describe() for output in outputs],
            **({"details": details.as_dict()} if hasattr(details, "as_dict") else {}),
        },
    )
    context.task.save_evaluation(evaluation, context.run_dir.plots / f"evaluate_{split}")
    return {f"{split}/{name}": value for name, value in evaluation.metrics.items()}


@STAGES.register(
    "predict",
    description="run a checkpoint (or the run's best) on the test split; "
    "the task writes its predictions file",
    task_hooks=("predict_step",),
)
def predict(context: StageContext, checkpoint: str | None = None) -> dict[str, float]:
    load_weights(context, checkpoint)
    trainer = build_trainer(context.spec, context.run_dir, fit=False)
    batches = trainer.predict(context.task, datamodule=context.datamodule)
    return {"predict/batches": float(len(batches or []))}


def load_weights(context: StageContext, checkpoint: str | None) -> Path | None:
    """Load ``checkpoint`` into the task, else the run's best checkpoint if there is one."""
    if checkpoint is None:
        return context.load_best_weights()
    path = Path(checkpoint)
    try:
        context.task.load_state_dict(read_task_state(path))
    except RuntimeError as error:  # missing, unexpected or reshaped keys
        raise CheckpointError(
            f"{path}: does not fit this task: {str(error).splitlines()[0]}",
            hint="the checkpoint must come from the same task, net and number of classes",
        ) from None
    return path
