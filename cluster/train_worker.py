"""The worker side of the Ray Train fit (:mod:`visionflow.cluster.train` is the driver side).

Every Ray Train worker runs :func:`train_loop_per_worker` with ``train.worker_config``: it
imports the modules that registered the spec's task and datamodule, unpickles the datamodule and
task the driver built, builds the Trainer (RayDDPStrategy, or RayFSDPStrategy for
``resources.strategy: fsdp``; RayLightningEnvironment) with the same ``pipelines.build``
function as a local fit, and ``trainer.fit``s. :class:`ReportToRay` reports
each finished epoch to Ray Train with a snapshot of ``last.ckpt``; an exception leaves the worker
as a picklable :class:`WorkerFailure`, which the driver turns into one short VisionFlow error.

Nothing here imports the driver side, so a worker unpickles this module alone.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from visionflow.errors import VisionFlowError
from visionflow.pipelines.console import EpochReporter

#: Subfolder of the run directory where Ray Train keeps its runs (storage_path); rank 0 stages
#: its checkpoint snapshots there too.
RAY_DIR = "ray"


class WorkerFailure(Exception):
    """What a worker's training function raises in place of its error: the original's type name,
    message and full traceback, and the original itself when it is a VisionFlowError."""

    def __init__(
        self,
        type_name: str,
        message: str,
        traceback_text: str,
        error: VisionFlowError | None = None,
    ):
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.traceback_text = type_name, message, traceback_text
        self.error = error

    @classmethod
    def wrap(cls, error: BaseException) -> WorkerFailure:
        import traceback

        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        kept = error if isinstance(error, VisionFlowError) else None
        return cls(type(error).__name__, first_line(error), text, kept)

    def __reduce__(self):
        return (type(self), (self.type_name, self.message, self.traceback_text, self.error))


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, str | None]:
    """Runs in every Ray Train worker: rebuild the run from plain data and ``trainer.fit`` it.

    An exception leaves as a short :class:`WorkerFailure` (Ray logs the traceback of whatever the
    function raises; the original one travels inside it to the driver's ``errors.txt``)."""
    try:
        return _fit_in_worker(config)
    except Exception as error:
        raise WorkerFailure.wrap(error) from None


def import_driver_modules(config: dict[str, Any]) -> None:
    """Import what registered the spec's components in the driver (``train.imports_for``), with
    the driver's import path added (the same machine, or a mirror of its layout)."""
    for path in config.get("sys_path", ()):
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
    for module in config.get("modules", ()):
        importlib.import_module(module)


def _fit_in_worker(config: dict[str, Any]) -> dict[str, str | None]:
    from ray.train.lightning import RayLightningEnvironment, prepare_trainer

    import_driver_modules(config)
    _quiet_worker()
    from visionflow.pipelines import seed_everything
    from visionflow.pipelines.build import build_trainer
    from visionflow.rundir import RunDirectory
    from visionflow.spec import parse_spec

    spec = parse_spec(config["spec"], source="")
    run_dir = RunDirectory(Path(config["run_dir"]))
    ckpt_path = _restarted_from(run_dir) or config.get("ckpt_path")

    seed_everything(spec.seed)
    datamodule, task = pickle.loads(config["built"])  # built by the driver (train.worker_config)
    quiet_bar = {} if "enable_progress_bar" in spec.trainer else {"enable_progress_bar": False}
    trainer = build_trainer(
        spec,
        run_dir,
        fit=True,
        monitor=task.checkpoint_monitor,
        strategy=ray_strategy(spec.resources.strategy),
        plugins=[RayLightningEnvironment()],
        callbacks=[ReportToRay(run_dir)],
        devices="auto",
        **quiet_bar,
    )
    trainer = prepare_trainer(trainer)
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    last = run_dir.last_checkpoint
    return {"last_checkpoint": str(last) if last else None}


def _restarted_from(run_dir: Any) -> str | None:
    """The ``last.ckpt`` that Ray Train restarts a failed worker group from, None on a first
    start. Rank 0 drops the metrics.csv rows logged after it, which the fit logs again."""
    import ray.train

    from visionflow.pipelines.csv_logging import drop_rows_from_step, logging_step
    from visionflow.pipelines.stages import read_checkpoint

    restored = ray.train.get_checkpoint()
    if restored is None:
        return None
    ckpt_path = Path(restored.path) / "last.ckpt"
    if ray.train.get_context().get_world_rank() == 0:
        drop_rows_from_step(run_dir.metrics_csv, logging_step(read_checkpoint(ckpt_path)))
    return str(ckpt_path)


def ray_strategy(name: str) -> Any:
    """Ray Train's Lightning strategy for ``resources.strategy``: ``ddp`` or ``fsdp``."""
    from ray.train.lightning import RayDDPStrategy, RayFSDPStrategy

    return RayFSDPStrategy() if name == "fsdp" else RayDDPStrategy()


def _quiet_worker() -> None:
    """One copy of each Lightning message (Ray's root console handler would print a second one),
    and no DDP notice about gradient strides (harmless for small convolutions)."""
    import logging
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics"):
        if logging.getLogger(name).handlers:  # their own console handler: no second copy via root
            logging.getLogger(name).propagate = False
    warnings.filterwarnings("ignore", message=".*Grad strides do not match bucket view strides.*")


class ReportToRay(EpochReporter):
    """Reports every finished epoch to Ray Train: the epoch's metrics and a snapshot of
    ``last.ckpt`` (a hard link where the storage is local, so no copy), which is what Ray Train
    restarts a failed worker group from (``ray.train.get_checkpoint()``) once ``max_failures > 0``.
    When an epoch counts as finished: :class:`EpochReporter`.
    Every rank reports (``ray.train.report`` is a barrier); only rank 0 attaches the checkpoint.

    Rank 0 also prints one line per epoch: Lightning's progress bar cannot redraw itself in a Ray
    worker's log stream, so it is off there unless the spec turns it on."""

    def __init__(self, run_dir: Any, verbose: bool = True):
        super().__init__(verbose)
        self.run_dir = run_dir

    def report(self, trainer: Any, epoch: int, step: int, metrics: dict[str, float]) -> None:
        import ray.train

        metrics = {**metrics, "epoch": epoch, "step": step}
        last = self.run_dir.last_checkpoint
        if trainer.global_rank != 0 or last is None:
            ray.train.report(metrics)
            return
        storage = ray.train.get_context().get_storage()
        (self.run_dir.path / RAY_DIR).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=self.run_dir.path / RAY_DIR))
        _link_or_copy(last, staging / last.name)
        checkpoint = ray.train.Checkpoint.from_directory(str(staging))
        if _is_local(storage):
            ray.train.report(
                metrics, checkpoint=checkpoint, checkpoint_upload_fn=_move_into_storage
            )
        else:
            ray.train.report(
                metrics, checkpoint=checkpoint, delete_local_checkpoint_after_upload=True
            )


def _is_local(storage: Any) -> bool:
    import pyarrow.fs

    return isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem)


def _move_into_storage(checkpoint: Any, dir_name: str) -> Any:
    """checkpoint_upload_fn for local storage: rename the staged snapshot into place (no copy)."""
    import ray.train

    storage = ray.train.get_context().get_storage()
    destination = Path(storage.build_checkpoint_path_from_name(dir_name))
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(checkpoint.path, destination)
    except OSError:  # another filesystem
        shutil.copytree(checkpoint.path, destination, dirs_exist_ok=True)
        shutil.rmtree(checkpoint.path, ignore_errors=True)
    return ray.train.Checkpoint.from_directory(str(destination))


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)  # last.ckpt is replaced (new inode) on each save: a snapshot
    except OSError:
        shutil.copy2(source, destination)
