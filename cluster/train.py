"""The Ray Train fit backend: ``fit`` on N Ray Train workers (DDP), every later stage in the driver.

    from visionflow.pipelines import run
    from visionflow.cluster import RayFitBackend, embedded_ray
    with embedded_ray():
        run(spec, fit_backend=RayFitBackend(num_workers=2))

It mirrors :class:`visionflow.pipelines.stages.LocalFitBackend`: the same ``build_trainer`` makes
the same Trainer in every worker, with Ray's DDP strategy and cluster environment plugged in.

Driver (this module)                           Ray Train worker, one per rank (``train_worker``)
--------------------                           -------------------------------------------------
``RayFitBackend.fit(context, ckpt)``           ``train_loop_per_worker(config)``:
  config = spec dict, absolute run-dir path,     import the modules that registered the spec's
  resume checkpoint, the modules to import,      task and datamodule; parse_spec; seed; unpickle
  the driver's datamodule + task (pickled)       the datamodule + task; Trainer(RayDDPStrategy,
  TorchTrainer(...).fit()  ------------------>   RayLightningEnvironment); trainer.fit
                                                 rank 0: ModelCheckpoint -> run_dir/checkpoints/,
                                                         CSVLogger -> run_dir/metrics.csv
                                                 every epoch: ray.train.report(metrics, snapshot
                                                         of last.ckpt)  -> run_dir/ray/<fit-run>/
  FitOutcome(best, last) from run_dir  <------   return
  worker exception -> RunError (message; full tracebacks in run_dir/ray/<fit-run>/errors.txt)

The run directory must be on storage every worker sees (local disk for the embedded cluster, a
shared filesystem on a real one).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from visionflow.cluster import local
from visionflow.cluster.local import scoped_env
from visionflow.cluster.train_worker import (
    RAY_DIR,
    WorkerFailure,
    first_line,
    train_loop_per_worker,
)
from visionflow.errors import RunError, SpecError, VisionFlowError
from visionflow.pipelines.stages import FitOutcome, StageContext, find_best_checkpoint
from visionflow.registry import DATAMODULES, TASKS

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")

#: Ray Train settings for our fits (passed on to the controller and workers). Ray Train's print
#: patch sends every ``print`` of a worker to the terminal twice.
FIT_ENV = {
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    # how often the controller polls the workers: a finished (or failed) fit is seen 0.5 s after,
    # not 2 s; polling two workers costs nothing measurable
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}

ERRORS_FILE = "errors.txt"


class RayFitBackend:
    """Fit on Ray Train workers. Arguments left ``None`` come from ``context.spec.resources``.

    Needs a running Ray (``ray.init`` or :func:`visionflow.cluster.embedded_ray`)."""

    def __init__(
        self,
        num_workers: int | None = None,
        use_gpu: bool | None = None,
        cpus_per_worker: int | None = None,
    ):
        for name, value in (("num_workers", num_workers), ("cpus_per_worker", cpus_per_worker)):
            if value is not None and value < 1:
                raise SpecError(f"RayFitBackend: {name} must be >= 1, got {value}")
        self.num_workers = num_workers
        self.use_gpu = use_gpu
        self.cpus_per_worker = cpus_per_worker

    def scaling(self, context: StageContext) -> tuple[int, bool, int]:
        """(num_workers, use_gpu, cpus_per_worker) of this fit."""
        resources = context.spec.resources
        return (
            resources.num_workers if self.num_workers is None else self.num_workers,
            resources.use_gpu if self.use_gpu is None else self.use_gpu,
            resources.cpus_per_worker if self.cpus_per_worker is None else self.cpus_per_worker,
        )

    def scaling_config(self, context: StageContext):
        """Ray Train's ScalingConfig (workers, their CPUs and GPUs, placement), after checking
        that the cluster has those resources."""
        from ray.train import ScalingConfig

        num_workers, use_gpu, cpus = self.scaling(context)
        resources = context.spec.resources
        per_worker = {"CPU": cpus, **({"GPU": resources.gpus_per_worker} if use_gpu else {})}
        check_capacity(num_workers, per_worker)
        return ScalingConfig(
            num_workers=num_workers,
            use_gpu=use_gpu,
            resources_per_worker=per_worker,
            placement_strategy=resources.placement.upper(),
        )

    def fit(self, context: StageContext, ckpt_path: Path | None) -> FitOutcome:
        import ray
        from ray.train import FailureConfig, LoggingConfig, RunConfig, TrainingFailedError

        if not ray.is_initialized():
            raise RunError(
                "RayFitBackend: Ray is not running",
                hint="wrap the run in `with visionflow.cluster.embedded_ray():` or call "
                "ray.init(address=...) first; visionflow.cluster.run does both",
            )
        run_dir = context.run_dir.path.resolve()
        name = _fit_run_name(run_dir / RAY_DIR)
        quiet = LoggingConfig(log_level="WARNING")  # Ray Train's INFO goes to its log files only
        trainer = trainer_class(embedded=local.current() is not None)(
            train_loop_per_worker,
            train_loop_config=worker_config(context, ckpt_path),
            scaling_config=self.scaling_config(context),
            run_config=RunConfig(
                name=name,
                storage_path=str(run_dir / RAY_DIR),
                failure_config=FailureConfig(max_failures=context.spec.resources.max_failures),
                logging_config=quiet,
            ),
        )
        sigint = signal.getsignal(signal.SIGINT)
        try:
            with scoped_env(FIT_ENV):
                result = trainer.fit()
        except TrainingFailedError as error:
            raise worker_error(error, run_dir / RAY_DIR / name) from None
        except SystemExit:  # Ctrl-C: Ray's handler aborts the workers, then ray.get exits
            raise KeyboardInterrupt("Ray Train fit interrupted") from None
        finally:  # Ray installs its own Ctrl-C handler for the fit; later stages get ours back
            if sigint is not None:
                signal.signal(signal.SIGINT, sigint)
        if result.return_value is None:  # the training function did not finish: Ctrl-C abort
            raise KeyboardInterrupt("Ray Train fit aborted")
        return FitOutcome(find_best_checkpoint(context.run_dir), context.run_dir.last_checkpoint)


def trainer_class(embedded: bool):
    """TorchTrainer; on the embedded Ray, without Ray Train's placement-group cleaner.

    The cleaner is a detached actor that removes the workers' placement group if the controller
    dies; on the embedded Ray everything dies with this process anyway. It needs the state API,
    i.e. the dashboard we do not start (it then warns every second), and it crashes when another
    Ray runs on the machine (it looks up "the" local Ray). One process fewer also starts faster."""
    from ray.train.torch import TorchTrainer

    if not embedded:
        return TorchTrainer

    class EmbeddedTorchTrainer(TorchTrainer):
        def _create_default_callbacks(self):  # Ray Train V2 internal; harmless if renamed
            callbacks = super()._create_default_callbacks()
            return [c for c in callbacks if type(c).__name__ != "PlacementGroupCleanerCallback"]

    return EmbeddedTorchTrainer


def worker_config(context: StageContext, ckpt_path: Path | None) -> dict[str, Any]:
    """What a worker needs: the spec, absolute paths, the modules to import first, and the
    datamodule and task the driver built (pickled here, unpickled by the worker once it has
    imported those modules), so no worker builds them again."""
    from ray import cloudpickle

    return {
        "spec": context.spec.to_dict(),
        "built": cloudpickle.dumps((context.datamodule, context.task)),
        "run_dir": str(context.run_dir.path.resolve()),
        "ckpt_path": str(Path(ckpt_path).resolve()) if ckpt_path else None,
        **imports_for(context.spec),
    }


def imports_for(spec: Any) -> dict[str, list[str]]:
    """What a fresh worker process imports before it parses ``spec`` (see
    :func:`visionflow.cluster.train_worker.import_driver_modules`): the modules that registered
    its task and datamodule, and the driver's import path."""
    return {
        "modules": provider_modules(spec),
        "sys_path": [p for p in sys.path if p and os.path.isdir(p)],
    }


def provider_modules(spec: Any) -> list[str]:
    """Modules whose import registers the spec's task and datamodule (a worker is a fresh process:
    components registered outside visionflow's own packages must be imported there too)."""
    modules = []
    for registry, name, path in (
        (TASKS, spec.task.name, "task"),
        (DATAMODULES, spec.data.name, "data"),
    ):
        module = registry.get(name).builder.__module__
        if module == "__main__":
            raise SpecError(
                f"{path}.name: {name!r} is registered in the __main__ script, which Ray workers "
                "cannot import",
                hint="move its registration into an importable module",
            )
        if module not in modules:
            modules.append(module)
    return modules


def check_capacity(count: int, per_unit: dict[str, float], what: str = "the fit") -> None:
    """Fail now, not hang: Ray waits forever for resources the cluster does not have. ``what``
    names who needs ``count`` times ``per_unit`` (``{"CPU": 1, "GPU": 1}``) in the error."""
    import ray

    total = ray.cluster_resources()
    need = {key: count * amount for key, amount in per_unit.items()}
    short = {k: v for k, v in need.items() if total.get(k, 0) < v}
    if short:
        have = ", ".join(f"{total.get(k, 0):g} {k}" for k in need)
        want = ", ".join(f"{v:g} {k}" for k, v in need.items())
        workers = f" ({count} workers)" if count > 1 else ""
        raise SpecError(
            f"resources: {what} needs {want}{workers} but the Ray cluster has {have}",
            hint="lower resources.num_workers / cpus_per_worker, or set use_gpu: false",
        )


def _fit_run_name(storage: Path) -> str:
    """A fresh Ray Train run name per fit: Ray resumes a run whose name it finds in storage."""
    stamp = datetime.now(timezone.utc).strftime("fit-%Y%m%d-%H%M%S")
    name, suffix = stamp, 1
    while (storage / name).exists():
        suffix += 1
        name = f"{stamp}-{suffix}"
    return name


# ------------------------------------------------------------------------------ errors -> RunError


def worker_error(error: Exception, ray_run_dir: Path) -> VisionFlowError:
    """A short VisionFlow error for a failed Ray Train fit; full tracebacks go to ``errors.txt``.

    A worker's own VisionFlowError (a DataError, say) keeps its type and hint; anything else is a
    RunError naming the rank and the exception."""
    failures: dict[int, BaseException] = dict(getattr(error, "worker_failures", None) or {})
    if not failures:  # a controller error: no worker raised
        cause = getattr(error, "controller_failure", error)
        path = _write_errors(ray_run_dir, f"{type(cause).__name__}: {cause}")
        return RunError(f"Ray Train failed: {first_line(cause)}", hint=_hint(path))
    summaries: dict[int, tuple[str, str, VisionFlowError | None]] = {}
    texts = []
    for rank in sorted(failures):
        failure = getattr(failures[rank], "_base_exc", failures[rank])  # Ray's wrapper
        if isinstance(failure, WorkerFailure):
            summaries[rank] = (failure.type_name, failure.message, failure.error)
            text = failure.traceback_text
        else:  # the worker process died (killed, out of memory, ...)
            summaries[rank] = (type(failure).__name__, first_line(failure), None)
            text = str(failures[rank])
        texts.append(f"--- rank {rank}: {summaries[rank][0]}\n{text.rstrip()}\n")
    path = _write_errors(ray_run_dir, "\n".join(texts))
    ranks = sorted(summaries)
    rank = next(
        (r for r in ranks if summaries[r][2] is not None),
        next((r for r in ranks if not _is_secondary(*summaries[r][:2])), ranks[0]),
    )
    type_name, message, original = summaries[rank]
    others = (
        f" (and {len(ranks) - 1} other rank{'s' if len(ranks) > 2 else ''})"
        if len(ranks) > 1
        else ""
    )
    where = f"Ray worker rank {rank}{others}"
    if original is not None:
        return type(original)(f"{original.message} [on {where}]", hint=original.hint or _hint(path))
    return RunError(f"fit failed on {where}: {type_name}: {message}", hint=_hint(path))


def _is_secondary(type_name: str, message: str) -> bool:
    """Errors a rank raises because another rank died (broken collectives), not the cause."""
    text = f"{type_name} {message}".lower()
    return any(
        word in text
        for word in (
            "gloo",
            "nccl",
            "connection reset",
            "connection closed",
            "actordied",
            "broken pipe",
        )
    )


def _write_errors(ray_run_dir: Path, text: str) -> Path | None:
    try:
        ray_run_dir.mkdir(parents=True, exist_ok=True)
        path = ray_run_dir / ERRORS_FILE
        path.write_text(text + "\n")
        return path
    except OSError:
        return None


def _hint(path: Path | None) -> str:
    return f"the workers' tracebacks are in {path}" if path else "see the Ray worker logs above"
