"""``run(spec) -> Results``: execute a pipeline's stages into a run directory; resume; many seeds.

    from visionflow.spec import load_spec
    from visionflow.pipelines import run
    results = run(load_spec("examples/digits_classification.yaml"))
    print(results.run_dir, results.metrics["test/acc"])

No Ray here: ``backend: ray`` specs go through ``visionflow.cluster.run`` (which passes a Ray fit
backend in) or the CLI.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionflow.errors import CheckpointError, SpecError
from visionflow.pipelines.build import build_datamodule, build_task, resolve_spec, seed_everything
from visionflow.pipelines.evaluation import EvaluationBackend, LocalEvaluationBackend
from visionflow.pipelines.stages import FitBackend, LocalFitBackend, StageContext
from visionflow.plots import plot_training_curves
from visionflow.registry import STAGES
from visionflow.rundir import SPEC_FILE, RunDirectory, atomic_write_json, read_json, refused_write
from visionflow.spec import MAX_SEED, PipelineSpec, load_spec

#: In the parent folder of a ``--seeds`` run: the seeds it runs (``{"seeds": [0, 1, 2]}``).
SEEDS_FILE = "seeds.json"


@dataclass
class Results:
    """What a run produced: its folder, the metrics of every stage, and all of them flattened.
    ``remote``: the URI the folder is mirrored to when ``output_dir`` is one (``run_dir`` is then
    the local staging copy)."""

    run_dir: Path
    stages: dict[str, dict[str, float]]
    metrics: dict[str, float] = field(default_factory=dict)
    remote: str | None = None


def run(
    spec: PipelineSpec,
    *,
    fit_backend: FitBackend | None = None,
    evaluation_backend: EvaluationBackend | None = None,
    run_dir: RunDirectory | None = None,
) -> Results:
    """Run every stage of ``spec`` in a new run directory (or the one given). The backends say
    where ``fit`` and the ``evaluate`` stage's shards run (default: in this process)."""
    return run_prepared(prepare(spec, fit_backend), evaluation_backend, run_dir)


def prepare(spec: PipelineSpec, fit_backend: FitBackend | None = None) -> PreparedRun:
    """``spec`` resolved, its datamodule (data prepared) and task built and seeded: every value
    is checked here, before anything is written and before a backend starts (``visionflow.cluster``
    prepares first, then starts Ray)."""
    spec = resolve_spec(spec)
    return _build(spec, fit_backend)  # a bad task or data value stops here: no folder yet


def run_prepared(
    prepared: PreparedRun,
    evaluation_backend: EvaluationBackend | None = None,
    run_dir: RunDirectory | None = None,
) -> Results:
    """Run the stages of a spec that :func:`prepare` built, in a new run directory (or the one
    given)."""
    spec = prepared.spec
    run_dir = run_dir or RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    return _execute(run_dir, prepared, evaluation_backend, resume=False)


def resume(
    path: str | Path,
    *,
    fit_backend: FitBackend | None = None,
    evaluation_backend: EvaluationBackend | None = None,
) -> Results | SeedsResults:
    """Continue an interrupted run: finished stages are kept, an unfinished fit restarts from
    ``checkpoints/last.ckpt``, the stages after it run as usual. The folder of a ``--seeds`` run
    continues its seeds (:func:`resume_seeds`)."""
    run_dir = RunDirectory.open(path)
    _refuse_completed(run_dir)
    if (run_dir.path / SEEDS_FILE).is_file():
        return resume_seeds(run_dir, fit_backend, evaluation_backend)
    return _resume_run(run_dir, fit_backend, evaluation_backend)


def _refuse_completed(run_dir: RunDirectory) -> None:
    if run_dir.status().get("state") == "completed":
        raise CheckpointError(
            f"{run_dir.location}: this run has already completed",
            hint="start a new run with `visionflow run SPEC`",
        )


def _resume_run(
    run_dir: RunDirectory,
    fit_backend: FitBackend | None,
    evaluation_backend: EvaluationBackend | None,
) -> Results:
    """:func:`resume` of one run's folder, not completed."""
    spec = load_spec(run_dir.spec_path)
    run_dir.remove_partial_writes()  # a kill mid-write leaves its temp file behind
    return _execute(run_dir, _build(spec, fit_backend), evaluation_backend, resume=True)


def _check_backend(spec: PipelineSpec, fit_backend: FitBackend | None) -> FitBackend:
    if spec.sweep is not None:
        raise SpecError(
            "sweep: a sweep runs its trials on Ray Tune",
            hint="run it with `visionflow run` or visionflow.cluster.sweep(spec)",
        )
    if fit_backend is not None:
        return fit_backend
    if spec.resources.backend == "ray":
        raise SpecError(
            "resources.backend: 'ray' needs the Ray backend",
            hint="run it with `visionflow run` or visionflow.cluster.run(spec); "
            "or set resources.backend: local",
        )
    return LocalFitBackend()


def stage_keys(spec: PipelineSpec) -> list[str]:
    """A unique key per stage: its name, with ``_2``, ``_3``... for repeats."""
    seen: dict[str, int] = {}
    keys = []
    for stage in spec.stages:
        seen[stage.name] = seen.get(stage.name, 0) + 1
        keys.append(stage.name if seen[stage.name] == 1 else f"{stage.name}_{seen[stage.name]}")
    return keys


@dataclass
class PreparedRun:
    """What a run is built from before its run directory exists: the resolved spec, the fit
    backend, the datamodule and the task."""

    spec: PipelineSpec
    fit_backend: FitBackend
    datamodule: Any
    task: Any


def _build(spec: PipelineSpec, fit_backend: FitBackend | None) -> PreparedRun:
    """The backend, the datamodule (its data prepared) and the task of ``spec``, seeded. Their
    constructors, and the stages' ``check`` tags, check the values of ``data.args``,
    ``task.args`` and the stages' arguments (errors name the key), so a bad one is refused before
    anything is written to the run directory."""
    backend = _check_backend(spec, fit_backend)
    for stage in spec.stages:  # a stage's own range checks (registered as its ``check`` tag)
        STAGES.get(stage.name).tags.get("check", _accept_any)(**stage.args)
    seed_everything(spec.seed)
    datamodule = build_datamodule(spec)
    datamodule.prepare_data()
    return PreparedRun(spec, backend, datamodule, build_task(spec, datamodule.info))


def _accept_any(**arguments: Any) -> None:
    """The check of a stage that registers none."""


def _execute(
    run_dir: RunDirectory,
    parts: PreparedRun,
    evaluation_backend: EvaluationBackend | None,
    resume: bool,
) -> Results:
    """Run the stages not yet ``done``. Any error leaves ``status.json`` saying ``interrupted``
    (when the disk takes it); a write the disk refused (full, read-only) becomes one line naming
    the file, wherever it happened: environment, status, a checkpoint, metrics, plots, summary;
    a run directory deleted under the run is one line too, and nothing is written after it."""
    done: dict[str, dict[str, float]] = dict(run_dir.status().get("stages", {})) if resume else {}
    try:
        return _run_stages(run_dir, parts, evaluation_backend, resume, done)
    except BaseException as error:
        deleted = run_dir.deleted()
        if deleted is not None:  # whatever failed then: say so, and write nothing more
            raise deleted from None
        with contextlib.suppress(OSError):  # the disk may refuse this one too
            run_dir.write_status("interrupted", done)
        refused = refused_write(error, run_dir.path) if isinstance(error, OSError) else None
        if refused is not None:
            raise refused from None
        raise


def _run_stages(
    run_dir: RunDirectory,
    parts: PreparedRun,
    evaluation_backend: EvaluationBackend | None,
    resume: bool,
    done: dict[str, dict[str, float]],
) -> Results:
    """The stages of :func:`_execute`, adding each one's metrics to ``done`` as it finishes."""
    spec, datamodule, task = parts.spec, parts.datamodule, parts.task
    if not resume:
        run_dir.write_environment(spec.seed)
    transforms = datamodule.transform_summary()
    if transforms:
        run_dir.write_yaml("transforms.yaml", transforms)
    context = StageContext(
        spec,
        run_dir,
        datamodule,
        task,
        parts.fit_backend,
        resume_checkpoint=run_dir.last_checkpoint if resume else None,
        evaluation_backend=evaluation_backend or LocalEvaluationBackend(),
    )
    if resume and "fit" in done:
        context.load_best_weights()
    run_dir.write_status("running", done)
    for key, stage in zip(stage_keys(spec), spec.stages):
        if key in done:
            continue
        stage_metrics = STAGES.get(stage.name).builder(context, **stage.args)
        _write_plots(context, stage.name)  # before the stage counts as done: resume redoes both
        done[key] = stage_metrics
        run_dir.write_status("running", done)
    metrics = {name: value for stage in done.values() for name, value in stage.items()}
    run_dir.write_summary(
        {
            "name": spec.name,
            "seed": spec.seed,
            "run_dir": run_dir.location,
            "stages": done,
            "metrics": metrics,
        }
    )
    run_dir.write_status("completed", done)
    return Results(run_dir.path, done, metrics, run_dir.remote)


def _write_plots(context: StageContext, stage: str) -> None:
    plot_training_curves(context.run_dir.metrics_csv, context.run_dir.plots)
    context.task.save_artifacts(stage, context.run_dir.plots)


@dataclass
class SeedsResults:
    """Runs of one spec over several seeds and the mean/std of every metric."""

    run_dir: Path
    runs: list[Results]
    summary: dict[str, dict[str, Any]]


def run_seeds(
    spec: PipelineSpec,
    seeds: int,
    *,
    fit_backend: FitBackend | None = None,
    evaluation_backend: EvaluationBackend | None = None,
) -> SeedsResults:
    """Run ``spec`` with seeds ``spec.seed .. spec.seed + seeds - 1``, each in ``seed_<s>/`` of one
    parent run directory, and write ``seeds_summary.json`` there (mean, std, values per metric)."""
    return run_prepared_seeds(prepare_seeds(spec, seeds, fit_backend), seeds, evaluation_backend)


def prepare_seeds(
    spec: PipelineSpec, seeds: int, fit_backend: FitBackend | None = None
) -> PreparedRun:
    """The first seed's run, built by :func:`prepare`: a bad ``seeds`` or spec value is refused
    before the parent run directory exists (the other seeds differ only in their seed)."""
    check_seeds(spec.seed, seeds)
    return prepare(spec, fit_backend)


def check_seeds(first: int, seeds: int) -> None:
    """SpecError unless ``seeds`` >= 1 and the last seed, ``first + seeds - 1``, is one NumPy
    takes (``visionflow.spec.MAX_SEED``)."""
    if seeds < 1:
        raise SpecError(f"--seeds: must be >= 1, got {seeds}")
    last = first + seeds - 1
    if last > MAX_SEED:
        raise SpecError(
            f"--seeds {seeds}: the seeds {first}..{last} go past {MAX_SEED}, the largest seed",
            hint="lower seed or --seeds",
        )


def run_prepared_seeds(
    first: PreparedRun, seeds: int, evaluation_backend: EvaluationBackend | None = None
) -> SeedsResults:
    """:func:`run_seeds` from its :func:`prepare_seeds`; each later seed is built when its turn
    comes, so every seed's run starts from the random state a single run of it would. The parent
    folder records its seeds in ``seeds.json`` first, for :func:`resume_seeds`."""
    spec = first.spec
    parent = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    seed_list = list(range(spec.seed, spec.seed + seeds))
    atomic_write_json(parent.path / SEEDS_FILE, {"seeds": seed_list})
    runs = []
    for seed in seed_list:
        prepared = first if seed == spec.seed else None
        runs.append(_run_seed(parent, spec, seed, prepared, first.fit_backend, evaluation_backend))
    return _finish_seeds(parent, seed_list, runs)


def resume_seeds(
    parent: RunDirectory,
    fit_backend: FitBackend | None = None,
    evaluation_backend: EvaluationBackend | None = None,
) -> SeedsResults:
    """Continue an interrupted ``--seeds`` run in ``parent``: a completed seed is kept, an
    interrupted one resumed, one not started yet run; then ``seeds_summary.json`` is written."""
    spec = load_spec(parent.spec_path)
    seed_list = read_json(parent.path / SEEDS_FILE)["seeds"]
    backend = _check_backend(spec, fit_backend)
    runs = []
    for seed in seed_list:
        child = _seed_run_directory(parent, seed)
        if child is None:
            runs.append(_run_seed(parent, spec, seed, None, backend, evaluation_backend))
        elif child.status().get("state") == "completed":
            runs.append(_completed_results(child))
        else:
            runs.append(_resume_run(child, backend, evaluation_backend))
    return _finish_seeds(parent, seed_list, runs)


def _run_seed(
    parent: RunDirectory,
    spec: PipelineSpec,
    seed: int,
    prepared: PreparedRun | None,
    fit_backend: FitBackend,
    evaluation_backend: EvaluationBackend | None,
) -> Results:
    """Seed ``seed`` of ``spec`` (``prepared``, or built now) in ``parent/seed_<seed>/``."""
    prepared = prepared or prepare(spec.replace(seed=seed), fit_backend)
    child = RunDirectory.create(parent.path, f"seed_{seed}", prepared.spec.to_yaml())
    return run_prepared(prepared, evaluation_backend, child)


def _seed_run_directory(parent: RunDirectory, seed: int) -> RunDirectory | None:
    """The run directory of seed ``seed`` in ``parent``, None before it was made."""
    made = sorted(path for path in (parent.path / f"seed_{seed}").glob("*/") if path.is_dir())
    started = [path for path in made if (path / SPEC_FILE).is_file()]
    return RunDirectory(started[-1]) if started else None


def _completed_results(run_dir: RunDirectory) -> Results:
    """The :class:`Results` of a completed run, from its ``status.json``."""
    stages = run_dir.status()["stages"]
    metrics = {name: value for stage in stages.values() for name, value in stage.items()}
    return Results(run_dir.path, stages, metrics, run_dir.remote)


def _finish_seeds(parent: RunDirectory, seeds: list[int], runs: list[Results]) -> SeedsResults:
    """Write ``seeds_summary.json`` of ``runs`` into ``parent`` and mark it completed."""
    summary = summarize_seeds(runs)
    atomic_write_json(
        parent.path / "seeds_summary.json",
        {"seeds": seeds, "runs": [str(r.run_dir) for r in runs], "metrics": summary},
    )
    parent.write_status("completed", {})
    return SeedsResults(parent.path, runs, summary)


def summarize_seeds(runs: list[Results]) -> dict[str, dict[str, Any]]:
    """``{metric: {mean, std, values}}`` over runs: ``values`` one per run, in the runs' (the
    seeds') order, None where a run has no finite value; ``mean`` and ``std`` (the sample std;
    0 for one value) over the finite ones. A metric no run has a finite value of is left out."""
    names = sorted({name for r in runs for name in r.metrics})
    summary = {}
    for name in names:
        values = [_finite(r.metrics.get(name)) for r in runs]
        finite = [value for value in values if value is not None]
        if finite:
            summary[name] = {
                "mean": statistics.fmean(finite),
                "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
                "values": values,
            }
    return summary


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
