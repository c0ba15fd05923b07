"""Entry points for ``resources.backend: ray``: the pipeline runner with Ray Train doing the fit.

    from visionflow.spec import load_spec
    from visionflow import cluster
    results = cluster.run(load_spec("examples/digits_classification.yaml"))

Each call is :func:`visionflow.pipelines.run` / ``resume`` / ``run_seeds`` inside
:func:`embedded_ray` (a private loopback-only Ray, or the one the caller already initialized)
with :class:`RayFitBackend` fitting on ``resources.num_workers`` Ray Train workers and
:class:`RayEvaluationBackend` running the ``evaluate`` stage's shards as Ray tasks. Every other
stage (test, knn, ...) runs in this process on the best checkpoint, as with ``backend: local``.
"""

from __future__ import annotations

import os
from pathlib import Path

from visionflow.cluster.evaluation import RayEvaluationBackend
from visionflow.cluster.local import embedded_ray
from visionflow.cluster.sweeps import SweepResults, resume_sweep, run_sweep
from visionflow.cluster.train import RayFitBackend
from visionflow.pipelines import Results, SeedsResults
from visionflow.pipelines import resume as _resume
from visionflow.pipelines.runner import prepare, prepare_seeds, run_prepared, run_prepared_seeds
from visionflow.rundir import RunDirectory
from visionflow.spec import PipelineSpec, load_spec


def run(spec: PipelineSpec, *, fit_backend: RayFitBackend | None = None) -> Results:
    """Run ``spec`` with its fit on Ray Train workers (see :func:`visionflow.pipelines.run`).
    Every value is checked (the task and datamodule built) before Ray starts."""
    prepared = prepare(spec, fit_backend or RayFitBackend())
    with embedded_ray(num_cpus=cpus_for(spec)):
        return run_prepared(prepared, RayEvaluationBackend())


def resume(path: str | Path, *, fit_backend: RayFitBackend | None = None) -> Results | SweepResults:
    """Continue an interrupted run (see :func:`visionflow.pipelines.resume`) on Ray Train, or an
    interrupted sweep on Ray Tune."""
    run_dir = RunDirectory.open(path)
    spec = load_spec(run_dir.spec_path)
    with embedded_ray(num_cpus=cpus_for(spec)):
        if spec.sweep is not None:
            return resume_sweep(spec, run_dir)
        return _resume(
            path,
            fit_backend=fit_backend or RayFitBackend(),
            evaluation_backend=RayEvaluationBackend(),
        )


def sweep(spec: PipelineSpec) -> SweepResults:
    """Run ``spec.sweep`` on Ray Tune, each trial a full run (see :mod:`visionflow.cluster.sweeps`)."""
    with embedded_ray(num_cpus=cpus_for(spec)):
        return run_sweep(spec)


def run_seeds(
    spec: PipelineSpec, seeds: int, *, fit_backend: RayFitBackend | None = None
) -> SeedsResults:
    """Run ``spec`` over ``seeds`` seeds (see :func:`visionflow.pipelines.run_seeds`), one Ray for
    all of them, started once the first seed's values are checked."""
    first = prepare_seeds(spec, seeds, fit_backend or RayFitBackend())
    with embedded_ray(num_cpus=cpus_for(spec)):
        return run_prepared_seeds(first, seeds, RayEvaluationBackend())


def cpus_for(spec: PipelineSpec) -> int:
    """Logical CPUs of the embedded Ray: the machine's, or what the spec's workers ask if more
    (Ray then oversubscribes the cores instead of waiting forever for CPUs that never come)."""
    resources = spec.resources
    return max(os.cpu_count() or 1, resources.num_workers * resources.cpus_per_worker)
