"""SIGKILL of ``visionflow run`` mid-epoch and in the middle of a checkpoint write: ``--resume``
finishes with the same final metrics as an uninterrupted run of the same seed, and no file in the
run directory is half-written. The kill comes from inside the run at a chosen step (the process
kills itself with SIGKILL, which nothing can catch), so where it lands does not depend on timing."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from tests.conftest import REPO_ROOT
from tests.faults.conftest import TINY
from visionflow import cli
from visionflow.pipelines import run
from visionflow.rundir import RunDirectory
from visionflow.spec import parse_spec

pytestmark = pytest.mark.slow

STAGES = ["fit", "test"]
#: Run in a child process: SIGKILL itself at the chosen point, then ``visionflow run SPEC``.
KILLERS = {
    "mid-epoch": """
        from visionflow.tasks.classification import ImageClassificationTask
        real = ImageClassificationTask.training_step
        def training_step(self, batch, batch_idx):
            if self.global_step == 26:                              # epoch 1, its 6th step
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, batch, batch_idx)
        ImageClassificationTask.training_step = training_step
    """,
    "mid-checkpoint-write": """
        from pathlib import Path
        from lightning.fabric.plugins import TorchCheckpointIO
        real = TorchCheckpointIO.save_checkpoint
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            if checkpoint["epoch"] == 1:                            # half of epoch 1's file
                Path(path).write_bytes(b"PK\\x03\\x04 half a checkpoint")
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, checkpoint, path, storage_options)
        TorchCheckpointIO.save_checkpoint = save_checkpoint
    """,
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, float]:
    folder = tmp_path_factory.mktemp("uninterrupted")
    return run(parse_spec({**TINY, "stages": STAGES, "output_dir": str(folder)})).metrics


@pytest.mark.parametrize("where", sorted(KILLERS))
def test_resume_after_sigkill_ends_where_an_uninterrupted_run_does(
    where, uninterrupted, tmp_path, capsys
):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump({**TINY, "stages": STAGES, "output_dir": str(tmp_path / "runs")})
    )
    child = (
        "import os, signal\n"
        + textwrap.dedent(KILLERS[where])
        + f"from visionflow import cli\ncli.main(['run', {str(spec)!r}])\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", child], cwd=REPO_ROOT, capture_output=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    (path,) = (tmp_path / "runs" / "fault").iterdir()
    run_dir = RunDirectory.open(path)
    partial = list(path.rglob(".*.tmp"))  # a kill skips the cleanup
    assert bool(partial) == (where == "mid-checkpoint-write"), partial
    last = torch.load(run_dir.last_checkpoint, map_location="cpu", weights_only=True)
    assert last["epoch"] == 0  # epoch 1's never landed

    assert cli.main(["run", "--resume", str(path)]) == 0, capsys.readouterr().err
    summary = RunDirectory.open(path).status()
    assert summary["state"] == "completed"
    for name in ("test/acc", "test/loss"):
        resumed = summary["stages"]["test"][name]
        assert resumed == pytest.approx(uninterrupted[name], abs=1e-6), name
    assert not list(path.rglob(".*.tmp")), "a half-written file stayed in the run directory"
    assert not [p for p in path.rglob("*") if p.is_file() and p.stat().st_size == 0]
