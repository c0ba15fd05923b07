"""A disk that refuses a write: full while a checkpoint, metrics.csv, status.json, summary.json or
a plot is written, or an ``output_dir`` that is read-only. One line naming the file; the checkpoints before it stay whole
and no half-written file stays behind. ENOSPC is simulated (the tests run as root, and a real
full disk would be shared with everything else)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.fabric.plugins import TorchCheckpointIO

from tests.faults.conftest import TINY
from visionflow import cli
from visionflow.errors import RunError
from visionflow.pipelines import resume, run
from visionflow.rundir import RunDirectory
from visionflow.spec import parse_spec


def disk_full(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def the_run(tmp_path) -> RunDirectory:
    (run_dir,) = (tmp_path / "runs" / "fault").iterdir()
    return RunDirectory.open(run_dir)


def assert_epoch_0_survives(run_dir: RunDirectory) -> None:
    checkpoint = torch.load(run_dir.last_checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0
    assert not list(run_dir.path.rglob("*.tmp")), "a half-written file stayed behind"
    assert run_dir.status()["state"] == "interrupted"


@pytest.mark.slow
def test_disk_full_while_writing_the_second_epochs_checkpoint(fault_spec, tmp_path, monkeypatch):
    real_save = TorchCheckpointIO.save_checkpoint

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if checkpoint["epoch"] == 0:
            return real_save(self, checkpoint, path, storage_options)
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")  # the start of the write
        raise disk_full(path)

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", save_checkpoint)
    with pytest.raises(
        RunError,
        match=r"checkpoints/best-epoch001\.ckpt: cannot write \(No space "
        r"left on device\): the run stopped; the checkpoints "
        r"before it are intact",
    ):
        run(fault_spec(stages=["fit"]))
    assert_epoch_0_survives(the_run(tmp_path))


@pytest.mark.slow
def test_disk_full_while_writing_metrics(fault_spec, tmp_path, monkeypatch):
    real_save = _ExperimentWriter.save

    def save(self):
        if any(Path(self.log_dir).parent.rglob("checkpoints/last.ckpt")):  # after epoch 0
            raise disk_full(self.metrics_file_path)
        real_save(self)

    monkeypatch.setattr(_ExperimentWriter, "save", save)
    with pytest.raises(RunError, match=r"metrics\.csv: cannot write \(No space left on device\)"):
        run(fault_spec(stages=["fit"]))
    assert_epoch_0_survives(the_run(tmp_path))


@pytest.fixture
def disk_full_writing(monkeypatch):
    """``disk_full_writing(name, after)``: the atomic write of the run's file ``name`` fails with
    ENOSPC, as a full disk fails it (``write``/``fsync`` name no file), once ``after(run_dir)``
    holds."""

    def arm(name: str, after) -> None:
        real_fsync = os.fsync

        def fsync(fd):
            temp = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if temp.name.startswith(f".{Path(name).name}.") and after(temp.parent):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return arm


def fitted(folder: Path) -> bool:
    """The fit is over: the run of ``folder`` (its run directory or one in it) has a checkpoint."""
    return any(folder.parent.rglob("last.ckpt"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["status.json", "plots/loss.png", "summary.json"])
def test_disk_full_while_writing_the_runs_own_files(
    fault_spec, tmp_path, disk_full_writing, monkeypatch, name
):
    disk_full_writing(name, fitted)
    one_epoch = {**TINY["trainer"], "max_epochs": 1}
    with pytest.raises(RunError) as caught:
        run(fault_spec(stages=["fit", "test"], trainer=one_epoch))
    run_dir = the_run(tmp_path)
    line, hint = str(caught.value).splitlines()
    assert line == (
        f"{run_dir.path / name}: cannot write (No space left on device): the run stopped; "
        "the checkpoints before it are intact"
    )
    assert (
        hint
        == f"  hint: free space (or make it writable), then `visionflow run --resume {run_dir.path}`"
    )
    checkpoint = torch.load(run_dir.last_checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0
    assert not list(run_dir.path.rglob("*.tmp")), "a half-written file stayed behind"
    monkeypatch.undo()  # space again: the run resumes and completes
    assert resume(run_dir.path).metrics["test/acc"] > 0.5
    assert run_dir.status()["state"] == "completed"


def test_a_read_only_output_dir_is_one_line(tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "read-only"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.is_relative_to(output_dir):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    spec = tmp_path / "spec.yaml"
    spec.write_text(parse_spec({**TINY, "output_dir": str(output_dir)}).to_yaml())
    assert cli.main(["run", str(spec)]) == 2
    errors = capsys.readouterr().err
    assert errors.startswith(
        f"visionflow: error: output_dir: {output_dir}: cannot make the run "
        f"directory there (Read-only file system)\n"
    ), errors
    assert "Traceback" not in errors
