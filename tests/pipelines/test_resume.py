"""Kill a real run in the middle of its fit, resume it, and check every epoch is accounted for."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from lightning.pytorch import Callback

from tests.conftest import REPO_ROOT
from tests.pipelines.conftest import (
    TINY_DIGITS,
    last_checkpoint_epoch,
    logged_twice,
    validated_epochs,
)
from visionflow.pipelines import LocalFitBackend, resume, run
from visionflow.pipelines.build import build_datamodule, build_task, build_trainer
from visionflow.rundir import RunDirectory

EPOCHS = 6


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    spec = {**TINY_DIGITS, "output_dir": str(tmp_path / "runs"), "stages": ["fit", "test"]}
    spec["trainer"] = {**spec["trainer"], "max_epochs": EPOCHS}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "visionflow", "run", str(spec_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    runs = tmp_path / "runs" / "tiny_digits"
    try:
        _wait_for(lambda: runs.is_dir() and any(runs.glob("*/checkpoints/last.ckpt")), 120)
        run_dir = next(runs.iterdir())
        _wait_for(lambda: last_checkpoint_epoch(run_dir) >= 1, 120)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = last_checkpoint_epoch(run_dir)
    assert killed_at < EPOCHS - 1, "the run finished before it was killed; make it longer"
    assert not (run_dir / "summary.json").exists()

    results = resume(run_dir)

    assert last_checkpoint_epoch(run_dir) == EPOCHS - 1
    assert "test/acc" in results.metrics
    epochs = validated_epochs(run_dir)
    assert epochs == set(range(EPOCHS)), f"validation epochs logged: {sorted(epochs)}"


def test_a_fit_restarted_from_scratch_overwrites_the_dead_attempts_checkpoints(tiny_spec):
    """A Ray worker that died after writing last.ckpt but before Ray recorded it is restarted
    from scratch in the same run directory: its checkpoints replace the dead attempt's (Lightning
    wrote last-v1.ckpt beside a last.ckpt stuck at the dead attempt's epoch, which --resume read)."""
    spec = tiny_spec(trainer={**TINY_DIGITS["trainer"], "max_epochs": 2, "limit_train_batches": 2})
    datamodule = build_datamodule(spec)
    datamodule.prepare_data()
    run_dir = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    for epochs in (1, 2):  # the dead attempt (1 epoch), then the restarted one: no resume
        trainer = build_trainer(
            spec, run_dir, fit=True, monitor=("val/loss", "min"), max_epochs=epochs
        )
        trainer.fit(build_task(spec, datamodule.info), datamodule=datamodule)
    names = sorted(path.name for path in run_dir.checkpoints.iterdir())
    assert not [name for name in names if "-v" in name], names
    assert last_checkpoint_epoch(run_dir.path) == 1


def test_a_moved_run_directory_resumes_remembering_its_best_checkpoint(tiny_spec, tmp_path):
    """A run resumed from another folder than it began in (copied to another disk, or an
    ``s3://`` run staged under another home) forgot its best score (Lightning keeps it only for
    the same ``dirpath``): the first resumed epoch became "best" beside the real best, and the
    later stages scored the newer of the two, whichever was better."""
    spec = tiny_spec(
        trainer={**TINY_DIGITS["trainer"], "max_epochs": 2, "limit_train_batches": 2},
        stages=["fit"],
    )
    datamodule = build_datamodule(spec)
    datamodule.prepare_data()
    started = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    trainer = build_trainer(spec, started, fit=True, monitor=("val/loss", "min"), max_epochs=1)
    trainer.fit(build_task(spec, datamodule.info), datamodule=datamodule)  # killed after epoch 0
    started.write_status("interrupted", {})
    moved = shutil.move(started.path, tmp_path / "moved")

    resume(moved)

    best = sorted(path.name for path in (tmp_path / "moved" / "checkpoints").glob("best-*"))
    assert len(best) == 1, best


class _LogEachStep(Callback):
    """Logs ``probe/batch`` at every training step (as a task logging ``on_step`` does) and, given
    ``interrupt_at=(epoch, batch)``, raises after that batch: its rows are in metrics.csv, its
    epoch's checkpoint is not (``last.ckpt`` holds the epoch before)."""

    def __init__(self, interrupt_at: tuple[int, int] | None = None):
        self.interrupt_at = interrupt_at

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx):
        task.log("probe/batch", float(batch_idx), on_step=True, on_epoch=False)
        if (trainer.current_epoch, batch_idx) == self.interrupt_at:
            raise RuntimeError("interrupted")


def _rows(metrics_csv) -> list[dict[str, str]]:
    with open(metrics_csv, newline="") as file:
        return list(csv.DictReader(file))


def _logged_steps(metrics_csv, metric: str) -> list[int]:
    """The steps at which ``metric`` has a value in metrics.csv, in the file's order."""
    return [int(row["step"]) for row in _rows(metrics_csv) if row.get(metric)]


def test_resume_logs_each_step_once_in_metrics_csv(tiny_spec):
    """Rows logged after ``last.ckpt`` (steps of an epoch whose checkpoint never landed) were
    logged again when the fit resumed from that checkpoint: two rows for one step and metric."""
    trainer = {**TINY_DIGITS["trainer"], "max_epochs": 2, "limit_train_batches": 4}
    spec = tiny_spec(
        trainer={**trainer, "log_every_n_steps": 1, "limit_val_batches": 2},
        data={"name": "digits", "args": {"batch_size": 16, "limit": 200}},
        stages=["fit"],
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        run(spec, fit_backend=LocalFitBackend(callbacks=(_LogEachStep(interrupt_at=(1, 2)),)))
    (run_dir,) = (Path(spec.output_dir) / spec.name).iterdir()
    assert last_checkpoint_epoch(run_dir) == 0

    resume(run_dir, fit_backend=LocalFitBackend(callbacks=(_LogEachStep(),)))

    assert validated_epochs(run_dir) == {0, 1}
    assert logged_twice(run_dir / "metrics.csv") == []
    assert _logged_steps(run_dir / "metrics.csv", "probe/batch") == list(range(8))  # none lost
