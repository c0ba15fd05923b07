"""Pipelines: run a spec's stages (fit, test, knn, ...) into a run directory. No Ray here."""

from visionflow.pipelines import (  # noqa: F401
    adversarial,
    backdoor,
    checkpoint_stages,
    stages,
    understanding,  # (register the stages)
)
from visionflow.pipelines.build import (
    build_datamodule,
    build_task,
    build_trainer,
    resolve_spec,
    seed_everything,
)
from visionflow.pipelines.runner import Results, SeedsResults, resume, run, run_seeds
from visionflow.pipelines.stages import FitBackend, FitOutcome, LocalFitBackend, StageContext

__all__ = [
    "FitBackend",
    "FitOutcome",
    "LocalFitBackend",
    "Results",
    "SeedsResults",
    "StageContext",
    "build_datamodule",
    "build_task",
    "build_trainer",
    "resolve_spec",
    "resume",
    "run",
    "run_seeds",
    "seed_everything",
]
