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
``trials/trial_<n>/`` (one per trial, numbered in grid order: ``values.json``, its parameter
values, written atomically when it starts, and ``<timestamp>/``, its run directory, written by
``visionflow.pipelines.run``), ``tune/`` (Ray Tune's state, so ``visionflow run --resume``
continues an interrupted sweep: finished trials are kept, interrupted ones resume their own run
directory; where that state is unreadable, the trial folders are the record of what finished and
the rest runs again), ``sweep_results.csv`` (one row per trial: its values, its final
metric, its run directory) and ``plots/sweep_<param>.png``.
Trials train in their Tune worker's process (``backend: local``); Ray schedules them.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import pickletools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from visionflow.errors import VisionFlowError
from visionflow.plots import save_figure
from visionflow.rundir import (
    SPEC_FILE,
    SUMMARY_FILE,
    RunDirectory,
    atomic_write_json,
    atomic_write_text,
    read_json,
)
from visionflow.spec import PipelineSpec, SweepSpec, parse_spec, with_values

TUNE_DIR = "tune"
TUNE_EXPERIMENT = "sweep"
TRIALS_DIR = "trials"
VALUES_FILE = "values.json"
RESULTS_FILE = "sweep_results.csv"
#: Ray Tune's state files in its experiment folder (the newest of each kind is restored);
#: ``experiment_state`` is JSON, the others are pickles.
TUNE_STATE_FILES = (
    "experiment_state-*.json",
    "basic-variant-state-*.json",
    "search_gen_state-*.json",
    "searcher-state-*.pkl",
    "callback-states-*.pkl",
)

logger = logging.getLogger(__name__)


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
    return _tune_unfinished_trials(spec, run_dir)


def resume_sweep(spec: PipelineSpec, run_dir: RunDirectory) -> SweepResults:
    """Continue an interrupted sweep from its Ray Tune state; finished trials are kept.

    Where Tune's state is missing or unreadable (a driver killed while Tune copied it into the run
    directory leaves a truncated file), it is set aside and a new Tune experiment runs the trials
    whose own run directories are not completed: those are the sweep's record of what finished."""
    from ray import tune

    _check_trial_layout(run_dir.path)
    path = run_dir.path / TUNE_DIR / TUNE_EXPERIMENT
    problem = unreadable_tune_state(path)
    if problem is None:
        tuner = tune.Tuner.restore(str(path), trainable=_trainable(spec), resume_errored=True)
        return _finish(spec, run_dir, tuner.fit())
    if path.exists():
        aside = path.rename(
            path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        )
        logger.warning(
            "sweep: %s; Ray Tune's state moved to %s, the unfinished trials run again from "
            "their run directories",
            problem,
            aside,
        )
    return _tune_unfinished_trials(spec, run_dir)


def unreadable_tune_state(path: Path) -> str | None:
    """Why Ray Tune cannot restore the experiment in ``path`` (no state, or a truncated state
    file), or None. Pickles are parsed opcode by opcode, never loaded."""
    if not (path / "tuner.pkl").is_file() or not list(path.glob(TUNE_STATE_FILES[0])):
        return f"{path}: no Ray Tune state"
    newest = [max(files) for pattern in TUNE_STATE_FILES if (files := list(path.glob(pattern)))]
    for file in [path / "tuner.pkl", *newest]:
        try:
            if file.name.startswith("experiment_state-"):
                json.loads(file.read_bytes())
            else:
                for _ in pickletools.genops(file.read_bytes()):
                    pass
        except ValueError as error:
            return f"{file}: unreadable ({error})"
    return None


def sweep_slots(sweep: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's trials in a fixed order, as their grid values: every grid point
    ``num_samples`` times (the other parameters are sampled by Tune when a trial starts)."""
    grids = {
        path: sampler["grid"] for path, sampler in sweep.parameters.items() if "grid" in sampler
    }
    points = [dict(zip(grids, values)) for values in itertools.product(*grids.values())]
    return [point for point in points for _ in range(sweep.num_samples)]


def _check_trial_layout(run_dir: Path) -> None:
    """Refuse, in one line, a sweep whose trial folders are Ray Tune's own (named by Tune's trial
    ids, as VisionFlow wrote them before ``trials/trial_<n>``): its trials cannot resume."""
    folders = sorted(p.name for p in (run_dir / TRIALS_DIR).glob("*") if p.is_dir())
    foreign = [name for name in folders if not re.fullmatch(r"trial_\d{3,}", name)]
    if foreign:
        raise VisionFlowError(
            f"{run_dir / TRIALS_DIR / foreign[0]}: a trial folder of an earlier VisionFlow's "
            "sweep layout; this sweep cannot be resumed",
            hint=f"run its spec again: visionflow run {run_dir / SPEC_FILE}",
        )


def trial_folder(run_dir: Path | str, slot: int) -> Path:
    """``trials/trial_<slot>``: the trial's recorded values and its run directories."""
    return Path(run_dir) / TRIALS_DIR / f"trial_{slot:03d}"


def _tune_unfinished_trials(spec: PipelineSpec, run_dir: RunDirectory) -> SweepResults:
    slots = sweep_slots(spec.sweep)
    unfinished = [
        i for i in range(len(slots)) if not _completed(_latest_run(trial_folder(run_dir.path, i)))
    ]
    grid = _new_tuner(spec, run_dir, slots, unfinished).fit() if unfinished else []
    return _finish(spec, run_dir, grid)


def _trainable(spec: PipelineSpec):
    from ray import tune

    cpus = spec.resources.cpus_per_worker
    return tune.with_resources(run_trial, {"cpu": cpus, "gpu": 1 if spec.resources.use_gpu else 0})


def _new_tuner(spec: PipelineSpec, run_dir: RunDirectory, slots: list[dict], unfinished: list[int]):
    """A Tune experiment with one trial per index of ``unfinished`` into ``slots``."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    sweep = spec.sweep
    base = {**spec.to_dict(), "sweep": None}
    base["resources"] = {**base["resources"], "backend": "local"}
    space = {
        "base": base,
        "sweep_dir": str(run_dir.path),
        "metric": sweep.metric,
        "sampled": {
            path: _sampler(sampler)
            for path, sampler in sweep.parameters.items()
            if "grid" not in sampler
        },
        "slots": slots,
        "slot": tune.grid_search(unfinished),
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
            scheduler=scheduler,
            max_concurrent_trials=sweep.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=TUNE_EXPERIMENT, storage_path=str(run_dir.path / TUNE_DIR), verbose=0
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
    """One trial, inside a Tune worker: the spec with this trial's values, as a full run in
    ``trials/trial_<slot>/``.

    A trial that runs again (Tune restored, or rebuilt after its state was lost) keeps its values
    and its run directory: a completed run is reported as it is, an interrupted one is resumed
    from its last checkpoint."""
    from ray import tune

    from visionflow.pipelines import LocalFitBackend, resume, run

    folder = trial_folder(config["sweep_dir"], config["slot"])
    values = _recorded_values(folder, {**config["sampled"], **config["slots"][config["slot"]]})
    previous = _latest_run(folder)
    if _completed(previous):
        summary = read_json(previous.path / SUMMARY_FILE)
        tune.report({**summary["metrics"], "run_dir": str(previous.path), "done": True})
        return
    backend = LocalFitBackend(callbacks=(ReportEpochToTune(config["metric"]),))
    if previous is not None:
        results = resume(previous.path, fit_backend=backend)
    else:
        spec = parse_spec(with_values(config["base"], values), source="")
        trial_dir = RunDirectory.create(folder.parent, folder.name, spec.to_yaml())
        results = run(spec, run_dir=trial_dir, fit_backend=backend)
    tune.report({**results.metrics, "run_dir": str(results.run_dir), "done": True})


def _recorded_values(folder: Path, sampled: dict[str, Any]) -> dict[str, Any]:
    """The trial's parameter values: as first recorded in ``folder``, else ``sampled``, recorded
    now (atomically) so that a trial run again keeps the values it started with."""
    record = folder / VALUES_FILE
    if record.is_file():
        return read_json(record)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, sampled)
    return sampled


def _latest_run(folder: Path) -> RunDirectory | None:
    """The trial's newest run directory (one with a resolved spec), if it ran before."""
    runs = sorted(p for p in folder.glob("*") if (p / SPEC_FILE).is_file())
    return RunDirectory(runs[-1]) if runs else None


def _completed(run: RunDirectory | None) -> bool:
    """Whether ``run`` (a trial's latest run directory, if any) completed."""
    return run is not None and run.status().get("state") == "completed"


def _finish(spec: PipelineSpec, run_dir: RunDirectory, grid) -> SweepResults:
    """Rank every trial of the sweep (the ones Tune ran now in ``grid``, the others from their run
    directories); write the table, the plots and the summary."""
    metric, params = spec.sweep.metric, list(spec.sweep.parameters)
    tuned = {result.config.get("slot"): result for result in grid}
    rows = [
        _row(trial_folder(run_dir.path, slot), point, tuned.get(slot), params, metric)
        for slot, point in enumerate(sweep_slots(spec.sweep))
    ]
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


def _row(folder: Path, point: dict, result, params: list[str], metric: str) -> dict[str, Any]:
    """One trial's values, final metric (its last report to Tune, else its run's summary), run
    directory and error."""
    values = read_json(folder / VALUES_FILE) if (folder / VALUES_FILE).is_file() else point
    latest = _latest_run(folder)
    summary = read_json(latest.path / SUMMARY_FILE)["metrics"] if _completed(latest) else {}
    reported = (result.metrics or {}) if result is not None else {}
    value = reported.get(metric, summary.get(metric))
    error = str(result.error) if result is not None and result.error else ""
    return {
        **{p: values.get(p) for p in params},
        metric: value,
        "run_dir": str(latest.path) if latest is not None else "",
        "error": error or ("" if value is not None else "no result: the trial did not report"),
    }


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
