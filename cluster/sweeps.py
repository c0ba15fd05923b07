"""Hyperparameter sweeps on Ray Tune: every trial is a full VisionFlow run of the spec.

    sweep:
      parameters:
        task.args.lr: {loguniform: [0.0001, 0.01]}
        data.args.batch_size: {grid: [32, 64]}
      metric: val/acc
      mode: max
      num_samples: 4          # per grid point
      scheduler: asha         # stop poor trials early on the per-epoch metric
      max_concurrent: 2

Layout: ``<output_dir>/<name>/<timestamp>/`` holds the sweep's spec,
``trials/<trial id>/<timestamp>/`` (one run directory per trial, written by
``visionflow.pipelines.run``), ``tune/`` (Ray Tune's state, so ``visionflow run --resume``
continues an interrupted sweep: finished trials are kept, interrupted ones resume their own run
directory), ``sweep_results.csv`` (one row per trial: its values, its final
metric, its run directory) and ``plots/sweep_<param>.png``.
Trials train in their Tune worker's process (``backend: local``); Ray schedules them.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from visionflow.plots import save_figure
from visionflow.rundir import SPEC_FILE, SUMMARY_FILE, RunDirectory, atomic_write_text, read_json
from visionflow.spec import PipelineSpec, parse_spec, with_values

TUNE_DIR = "tune"
RESULTS_FILE = "sweep_results.csv"


@dataclass
class SweepResults:
    """The sweep's folder, one row per trial, and the best row by the sweep's metric."""

    run_dir: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None


def run_sweep(spec: PipelineSpec, run_dir: RunDirectory | None = None) -> SweepResults:
    """Run ``spec.sweep`` on the running Ray (see ``visionflow.cluster.run``)."""
    run_dir = run_dir or RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    run_dir.write_environment(spec.seed)
    run_dir.write_status("running")
    tuner = _new_tuner(spec, run_dir)
    return _finish(spec, run_dir, tuner.fit())


def resume_sweep(spec: PipelineSpec, run_dir: RunDirectory) -> SweepResults:
    """Continue an interrupted sweep from its Ray Tune state; finished trials are kept."""
    from ray import tune

    path = str(run_dir.path / TUNE_DIR / "sweep")
    if not tune.Tuner.can_restore(path):
        return run_sweep(spec, run_dir)
    tuner = tune.Tuner.restore(path, trainable=_trainable(spec), resume_errored=True)
    return _finish(spec, run_dir, tuner.fit())


def _trainable(spec: PipelineSpec):
    from ray import tune

    cpus = spec.resources.cpus_per_worker
    return tune.with_resources(run_trial, {"cpu": cpus, "gpu": 1 if spec.resources.use_gpu else 0})


def _new_tuner(spec: PipelineSpec, run_dir: RunDirectory):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    sweep = spec.sweep
    base = {**spec.to_dict(), "sweep": None}
    base["resources"] = {**base["resources"], "backend": "local"}
    space = {
        "base": base,
        "trials_dir": str(run_dir.path / "trials"),
        "metric": sweep.metric,
        "params": {path: _sampler(sampler) for path, sampler in sweep.parameters.items()},
    }
    scheduler = (
        ASHAScheduler(time_attr="epoch", grace_period=1) if sweep.scheduler == "asha" else None
    )
    return tune.Tuner(
        _trainable(spec),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=sweep.metric,
            mode=sweep.mode,
            num_samples=sweep.num_samples,
            scheduler=scheduler,
            max_concurrent_trials=sweep.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name="sweep", storage_path=str(run_dir.path / TUNE_DIR), verbose=0
        ),
    )


def _sampler(sampler: dict[str, Any]) -> Any:
    from ray import tune

    ((kind, values),) = sampler.items()
    if kind == "grid":
        return tune.grid_search(values)
    if kind == "choice":
        return tune.choice(values)
    return {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}[kind](
        *values
    )


class ReportEpochToTune(Callback):
    """At the end of each training epoch, ``tune.report`` the metrics so far (ASHA decides on
    them), when they include the sweep's metric. Validation has run by then, and the task has
    logged its ``val/*`` epoch metrics (a module's epoch-end hooks run after the callbacks')."""

    def __init__(self, metric: str):
        self.metric = metric

    def on_train_epoch_end(self, trainer, module) -> None:
        if self.metric not in trainer.callback_metrics:
            return
        from ray import tune

        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        tune.report({**metrics, "epoch": trainer.current_epoch + 1})


def run_trial(config: dict[str, Any]) -> None:
    """One trial, inside a Tune worker: the spec with this trial's values, as a full run.

    A trial that Tune starts again after a restore (the driver died before Tune's state recorded
    its end) keeps its run directory: a completed run is reported as it is, an interrupted one
    is resumed from its last checkpoint."""
    from ray import tune

    from visionflow.pipelines import LocalFitBackend, resume, run

    trial = tune.get_context().get_trial_id()
    previous = _latest_run(Path(config["trials_dir"]) / trial)
    if previous is not None and previous.status().get("state") == "completed":
        summary = read_json(previous.path / SUMMARY_FILE)
        tune.report({**summary["metrics"], "run_dir": str(previous.path), "done": True})
        return
    backend = LocalFitBackend(callbacks=(ReportEpochToTune(config["metric"]),))
    if previous is not None:
        results = resume(previous.path, fit_backend=backend)
    else:
        spec = parse_spec(with_values(config["base"], config["params"]), source="")
        trial_dir = RunDirectory.create(config["trials_dir"], trial, spec.to_yaml())
        results = run(spec, run_dir=trial_dir, fit_backend=backend)
    tune.report({**results.metrics, "run_dir": str(results.run_dir), "done": True})


def _latest_run(trial_dir: Path) -> RunDirectory | None:
    """The trial's newest run directory (one with a resolved spec), if it ran before."""
    runs = sorted(p for p in trial_dir.glob("*") if (p / SPEC_FILE).is_file())
    return RunDirectory(runs[-1]) if runs else None


def _finish(spec: PipelineSpec, run_dir: RunDirectory, grid) -> SweepResults:
    metric, params = spec.sweep.metric, list(spec.sweep.parameters)
    rows = []
    for result in grid:
        values = result.config["params"]
        final = result.metrics or {}
        rows.append(
            {
                **{p: values[p] for p in params},
                metric: final.get(metric),
                "run_dir": final.get("run_dir", ""),
                "error": str(result.error or ""),
            }
        )
    rows.sort(key=lambda r: _sort_key(r[metric], spec.sweep.mode))
    _write_table(run_dir.path / RESULTS_FILE, rows, [*params, metric, "run_dir", "error"])
    for param in params:
        _plot(rows, param, metric, run_dir.plots / f"sweep_{param.replace('.', '_')}.png")
    best = rows[0] if rows and rows[0][metric] is not None else None
    run_dir.write_summary(
        {
            "name": spec.name,
            "metric": metric,
            "mode": spec.sweep.mode,
            "best": best,
            "trials": len(rows),
        }
    )
    run_dir.write_status("completed")
    return SweepResults(run_dir.path, rows, best)


def _sort_key(value: Any, mode: str) -> float:
    if value is None or not math.isfinite(value):
        return math.inf
    return -value if mode == "max" else value


def _write_table(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _plot(rows: list[dict[str, Any]], param: str, metric: str, path: Path) -> None:
    from matplotlib.figure import Figure

    points = [(r[param], r[metric]) for r in rows if r[metric] is not None]
    figure = Figure(figsize=(6, 4), layout="tight")
    axes = figure.subplots()
    axes.scatter([p for p, _ in points], [m for _, m in points])
    if (
        points
        and all(isinstance(p, (int, float)) and p > 0 for p, _ in points)
        and max(p for p, _ in points) / min(p for p, _ in points) >= 100
    ):
        axes.set_xscale("log")
    axes.set_xlabel(param)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} vs {param}")
    axes.grid(alpha=0.3)
    save_figure(figure, path)
