"""Pipeline stages: ``fit``, ``validate``, ``test`` and ``knn``.

A stage is a function ``stage(context, **args) -> {metric: value}`` registered in ``STAGES``; its
keyword arguments are what a spec may give it (``stages: [fit, {knn: {k: 5}}]``), checked against
the signature before the run starts. Only ``fit`` depends on the backend: the context's
``fit_backend`` trains in this process (:class:`LocalFitBackend`) or on Ray workers
(``visionflow.cluster``); every later stage runs here, on the best checkpoint.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from visionflow.batches import ImageClassificationBatch
from visionflow.errors import CheckpointError, SpecError
from visionflow.pipelines.build import build_trainer
from visionflow.pipelines.console import console_callbacks
from visionflow.pipelines.csv_logging import drop_rows_from_step, logging_step
from visionflow.pipelines.evaluation import EvaluationBackend, LocalEvaluationBackend
from visionflow.pipelines.nonfinite import NonFiniteMode
from visionflow.plots import read_metric_series
from visionflow.registry import STAGES
from visionflow.rundir import RunDirectory
from visionflow.spec import PipelineSpec


@dataclass
class FitOutcome:
    """Where a fit left its checkpoints (paths inside the run directory)."""

    best_checkpoint: Path | None
    last_checkpoint: Path | None


class FitBackend(Protocol):
    """Trains ``context.task`` on ``context.datamodule`` as ``context.spec`` says."""

    def fit(self, context: StageContext, ckpt_path: Path | None) -> FitOutcome: ...


@dataclass
class StageContext:
    """Everything a stage may use. ``resume_checkpoint`` is set when ``--resume`` continues a fit;
    ``evaluation_backend`` runs the ``evaluate`` stage's shards (here, or on Ray workers)."""

    spec: PipelineSpec
    run_dir: RunDirectory
    datamodule: Any
    task: Any
    fit_backend: FitBackend
    resume_checkpoint: Path | None = None
    outcome: FitOutcome | None = field(default=None)
    evaluation_backend: EvaluationBackend = field(default_factory=LocalEvaluationBackend)

    def load_best_weights(self) -> Path | None:
        """Load the best checkpoint of this run's fit into ``task`` (weights only); return its path."""
        path = find_best_checkpoint(self.run_dir)
        if path is not None:
            self.task.load_state_dict(read_task_state(path))
        return path


def find_best_checkpoint(run_dir: RunDirectory) -> Path | None:
    """The ``best-*.ckpt`` of a run (newest if several), else ``last.ckpt``, else ``None``."""
    best = sorted(run_dir.checkpoints.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    return best[-1] if best else run_dir.last_checkpoint


class LocalFitBackend:
    """Fit in this process with a plain Lightning Trainer (no Ray); ``callbacks`` join the
    Trainer's own (a sweep adds one that reports each epoch to Ray Tune)."""

    def __init__(self, callbacks: tuple[Any, ...] = ()):
        self.callbacks = tuple(callbacks)

    def fit(self, context: StageContext, ckpt_path: Path | None) -> FitOutcome:
        lines, quiet_bar = console_callbacks(context.spec.trainer)
        trainer = build_trainer(
            context.spec,
            context.run_dir,
            fit=True,
            monitor=context.task.checkpoint_monitor,
            callbacks=(*self.callbacks, *lines),
            **quiet_bar,
        )
        trainer.fit(
            context.task,
            datamodule=context.datamodule,
            ckpt_path=str(ckpt_path) if ckpt_path else None,
            weights_only=True,
        )
        return FitOutcome(find_best_checkpoint(context.run_dir), context.run_dir.last_checkpoint)


def read_task_state(path: Path) -> dict[str, Any]:
    """The ``state_dict`` of a Lightning checkpoint; CheckpointError when it is not one."""
    return read_checkpoint(path)["state_dict"]


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A whole Lightning checkpoint (weights only); CheckpointError when it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file is missing") from None
    except Exception as error:  # zip, pickle and torch errors: not a readable checkpoint
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: cannot read the checkpoint ({reason})",
            hint="it is truncated or not a checkpoint; resume from another or start a new run",
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(
            f"{path}: not a Lightning checkpoint (no 'state_dict')",
            hint="give a .ckpt from a run's checkpoints/ folder",
        )
    return state


def final_fit_metrics(run_dir: RunDirectory) -> dict[str, float]:
    """The last epoch's value of every ``train/*`` and ``val/*`` metric in metrics.csv."""
    if not run_dir.metrics_csv.is_file():
        return {}
    series = read_metric_series(run_dir.metrics_csv)
    return {
        name: points[-1][1]
        for name, points in sorted(series.items())
        if name.startswith(("train/", "val/")) and points
    }


@STAGES.register(
    "fit", description="train the task (Lightning Trainer.fit); keeps the best checkpoint"
)
def fit(context: StageContext, on_non_finite_loss: NonFiniteMode = "stop") -> dict[str, float]:
    """``on_non_finite_loss``: a NaN or infinite training loss stops the fit (``stop``) or skips
    that optimizer step (``skip``); ``build_trainer`` reads it from the spec, as Ray workers do.
    A resumed fit first drops the metrics.csv rows logged after its checkpoint: it logs them
    again."""
    if context.resume_checkpoint is not None:
        if not Path(context.resume_checkpoint).is_file():
            raise CheckpointError(
                f"{context.resume_checkpoint}: checkpoint to resume from is missing"
            )
        # a truncated file: one line, not Lightning's
        checkpoint = read_checkpoint(context.resume_checkpoint)
        drop_rows_from_step(context.run_dir.metrics_csv, logging_step(checkpoint))
    context.outcome = context.fit_backend.fit(context, context.resume_checkpoint)
    context.load_best_weights()
    return final_fit_metrics(context.run_dir)


def _evaluate(context: StageContext, stage: str) -> dict[str, float]:
    trainer = build_trainer(context.spec, context.run_dir, fit=False)
    run = trainer.test if stage == "test" else trainer.validate
    results = run(context.task, datamodule=context.datamodule, verbose=False)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


@STAGES.register("test", description="evaluate the (best) model on the test split")
def test(context: StageContext) -> dict[str, float]:
    return _evaluate(context, "test")


@STAGES.register("validate", description="evaluate the (best) model on the validation split")
def validate(context: StageContext) -> dict[str, float]:
    return _evaluate(context, "validate")


def stage_arguments(stage: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Every argument of the stage function ``stage``: ``args`` over its signature's defaults
    (for a ``check`` function, which the runner calls with the arguments the spec gives)."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(stage).parameters.items()
        if name != "context" and parameter.default is not inspect.Parameter.empty
    }
    return defaults | args


def refuse_first_problem(
    stage: str, problems: list[tuple[str, bool, str]], values: dict[str, Any] | None = None
) -> None:
    """SpecError ``stages.<stage>.<key>: <message>`` (``, got <value>`` from ``values`` where
    given) for the first ``(key, ok, message)`` of ``problems`` that is not ok."""
    for key, ok, message in problems:
        if not ok:
            got = f", got {values[key]}" if values is not None else ""
            raise SpecError(f"stages.{stage}.{key}: {message}{got}")


def check_knn_arguments(k: int = 1, distance: str = "l2") -> None:
    """The ``knn`` stage's ranges, checked by the runner before the run directory exists."""
    if k < 1:
        raise SpecError(f"stages.knn.k: must be >= 1, got {k}")


@STAGES.register(
    "knn",
    description="k-nearest-neighbour baseline on raw pixels (train -> test)",
    check=check_knn_arguments,
    batch=ImageClassificationBatch,
)
def knn(
    context: StageContext, k: int = 1, distance: Literal["l1", "l2"] = "l2"
) -> dict[str, float]:
    from visionflow.tasks.knn import KNearestNeighbors

    check_knn_arguments(k, distance)
    datamodule = context.datamodule
    datamodule.setup("fit")
    datamodule.setup("test")
    train_x, train_y = _collect_pixels(datamodule.train_dataloader(), "train")
    test_x, test_y = _collect_pixels(datamodule.test_dataloader(), "test")
    model = KNearestNeighbors(k=k, distance=distance).fit(train_x, train_y)
    return {"knn/test_acc": float(model.accuracy(test_x, test_y))}


def _collect_pixels(loader: Any, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened images ``[N, C*H*W]`` and labels ``[N]`` of a whole split."""
    images, labels = [], []
    for batch in loader:
        if not isinstance(batch, ImageClassificationBatch):
            raise SpecError(
                f"stages.knn: needs image-classification data, but the {split} split "
                f"yields {type(batch).__name__}"
            )
        images.append(batch.images.flatten(1).float().cpu())
        labels.append(batch.targets.cpu())
    return torch.cat(images), torch.cat(labels)
