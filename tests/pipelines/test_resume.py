"""Kill a real run in the middle of its fit, resume it, and check every epoch is accounted for."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO_ROOT
from tests.pipelines.conftest import TINY_DIGITS
from visionflow.pipelines import resume

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
        _wait_for(lambda: _epoch_of(run_dir / "checkpoints" / "last.ckpt") >= 1, 120)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = _epoch_of(run_dir / "checkpoints" / "last.ckpt")
    assert killed_at < EPOCHS - 1, "the run finished before it was killed; make it longer"
    assert not (run_dir / "summary.json").exists()

    results = resume(run_dir)

    assert _epoch_of(run_dir / "checkpoints" / "last.ckpt") == EPOCHS - 1
    assert "test/acc" in results.metrics
    with open(run_dir / "metrics.csv", newline="") as file:
        epochs = {
            int(float(r["epoch"]))
            for r in csv.DictReader(file)
            if r.get("epoch") and r.get("val/loss")
        }
    assert epochs == set(range(EPOCHS)), f"validation epochs logged: {sorted(epochs)}"


def _epoch_of(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1
