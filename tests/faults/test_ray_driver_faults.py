"""Under ``resources.backend: ray``: the driver (``visionflow run``) SIGKILLed in the middle of
the fit, then ``visionflow run --resume`` finishes the run. The embedded Ray and its training
workers die with the driver (Ray ties them to it), so nothing keeps writing into the run
directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

import psutil
import yaml

from tests.conftest import REPO_ROOT
from tests.faults.conftest import TINY
from tests.pipelines.conftest import last_checkpoint_epoch
from visionflow import cli
from visionflow.rundir import RunDirectory

pytestmark = [pytest.mark.ray, pytest.mark.slow]
EPOCHS = 3


def files_and_times(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()}


def agent(process: psutil.Process) -> bool:
    """Whether ``process`` is one of Ray's agents (dashboard, runtime env)."""
    try:
        return "Agent" in process.name()
    except psutil.Error:
        return False


def wait_for_epoch_0(
    driver: subprocess.Popen, runs: Path, log: Path, timeout_s: float = 240
) -> Path:
    """The run directory, once its fit has checkpointed epoch 0 (the driver still running)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and driver.poll() is None:
        found = next(runs.glob("*/*/checkpoints/last.ckpt"), None)
        if found is not None and last_checkpoint_epoch(found.parent.parent) >= 0:
            return found.parent.parent
        time.sleep(0.2)
    driver.kill()
    pytest.fail(f"the fit did not checkpoint epoch 0: {log.read_text()[-2000:]}")


def test_the_driver_killed_mid_fit_resumes_to_the_end(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    raw = {
        **TINY,
        "trainer": {**TINY["trainer"], "max_epochs": EPOCHS},
        "stages": ["fit", "test"],
        "resources": {"backend": "ray", "num_workers": 1},
        "output_dir": str(tmp_path / "runs"),
    }
    spec.write_text(yaml.safe_dump(raw))
    log = tmp_path / "driver.log"  # a file, not a pipe: a chatty driver never blocks on it
    with log.open("wb") as output:
        command = [sys.executable, "-m", "visionflow", "run", str(spec)]
        driver = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=output)
    run_dir = wait_for_epoch_0(driver, tmp_path / "runs", log)
    # the raylet, the GCS and the training workers die with the driver; Ray's two agents notice
    # their raylet is gone and exit on their own a little later (not waited for)
    ray_processes = [p for p in psutil.Process(driver.pid).children(recursive=True) if not agent(p)]
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    assert last_checkpoint_epoch(run_dir) < EPOCHS - 1, "the fit ended before the kill"
    _, alive = psutil.wait_procs(ray_processes, timeout=30)
    assert not alive, f"Ray processes outlived their driver: {[p.name() for p in alive]}"
    before = files_and_times(run_dir)
    time.sleep(1)
    assert files_and_times(run_dir) == before, "something still writes into the run directory"

    assert cli.main(["run", "--resume", str(run_dir)]) == 0, capsys.readouterr().err
    resumed = RunDirectory.open(run_dir)
    assert resumed.status()["state"] == "completed"
    assert last_checkpoint_epoch(run_dir) == EPOCHS - 1
    assert resumed.status()["stages"]["test"]["test/acc"] > 0.5
    assert not list(run_dir.rglob(".*.tmp"))
