"""Kill a Ray Train worker process in the middle of a fit: with ``resources.max_failures`` the
fit restarts from its last checkpoint and ends with every epoch accounted for."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import visionflow.cluster  # noqa: F401  (before ray: sets Ray's log filter at ray's import)

pytest.importorskip("ray")

import psutil

from tests.conftest import REPO_ROOT
from tests.pipelines.conftest import last_checkpoint_epoch, logged_twice, validated_epochs
from visionflow import cluster
from visionflow.spec import load_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow]
EPOCHS = 4


def train_workers() -> list[psutil.Process]:
    """This machine's Ray Train worker processes (Ray names them ``ray::RayTrainWorker...``)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if "RayTrainWorker" in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


class WorkerKiller(threading.Thread):
    """Waits until the fit has checkpointed epoch 1, then SIGKILLs one training worker."""

    def __init__(self, runs: Path):
        super().__init__(daemon=True)
        self.runs = runs
        self.killed_at_epoch: int | None = None
        self.killed_pid: int | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            last = next(self.runs.glob("*/*/checkpoints/last.ckpt"), None)
            epoch = last_checkpoint_epoch(last.parents[1]) if last else -1
            workers = train_workers()
            if epoch >= 1 and workers:
                self.killed_pid = workers[0].pid
                self.killed_at_epoch = epoch
                os.kill(self.killed_pid, signal.SIGKILL)
                return
            time.sleep(0.1)


def test_a_killed_worker_is_replaced_and_the_fit_resumes(tmp_path):
    spec = load_spec(
        REPO_ROOT / "examples" / "digits_classification.yaml",
        [
            f"output_dir={tmp_path / 'runs'}",
            f"trainer.max_epochs={EPOCHS}",
            "stages=[fit, test]",
            "data.args.batch_size=8",
            "resources.max_failures=1",
        ],
    )
    killer = WorkerKiller(tmp_path / "runs")
    killer.start()
    results = cluster.run(spec)
    killer.join(timeout=5)

    assert killer.killed_pid is not None, "no worker was killed: the fit ended too soon"
    assert killer.killed_at_epoch < EPOCHS - 1
    assert (
        not psutil.pid_exists(killer.killed_pid)
        or psutil.Process(killer.killed_pid).status() == psutil.STATUS_ZOMBIE
    )
    run_dir = results.run_dir
    assert last_checkpoint_epoch(run_dir) == EPOCHS - 1
    epochs = validated_epochs(run_dir)
    assert epochs == set(range(EPOCHS)), f"validation epochs logged: {sorted(epochs)}"
    assert logged_twice(run_dir / "metrics.csv") == []  # the restarted group logs each step once
    assert results.metrics["test/acc"] > 0.9
