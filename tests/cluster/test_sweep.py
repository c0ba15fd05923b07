"""A real Ray Tune sweep: each trial a full VisionFlow run, a results table and a plot; a sweep
whose driver was SIGKILLed resumes with ``visionflow run --resume`` and finishes every trial."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import visionflow.cluster  # noqa: F401  (before ray: sets Ray's log filter at ray's import)

pytest.importorskip("ray")

import psutil

from tests.conftest import REPO_ROOT
from visionflow import cluster
from visionflow.cli import main as visionflow_cli
from visionflow.cluster.sweeps import SweepResults, resume_sweep
from visionflow.errors import VisionFlowError
from visionflow.rundir import RunDirectory
from visionflow.spec import load_spec, parse_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory) -> SweepResults:
    """A finished sweep of the digits example: two learning rates, 2 epochs, both at once."""
    tmp_path = tmp_path_factory.mktemp("grid_sweep")
    spec = load_spec(
        REPO_ROOT / "examples" / "digits_classification.yaml",
        [
            f"output_dir={tmp_path}",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            "task.args.net=linear",
            "stages=[fit, test]",
            "sweep={parameters: {task.args.optimizer.lr: {grid: [0.03, 0.00001]}}, metric: val/acc, "
            "mode: max, max_concurrent: 2}",
        ],
    )
    return cluster.sweep(spec)


def test_grid_sweep_runs_every_trial_and_ranks_them(grid_sweep):
    results = grid_sweep

    assert len(results.rows) == 2
    assert [row["task.args.optimizer.lr"] for row in results.rows] == [0.03, 0.00001]  # best first
    assert results.best["val/acc"] > results.rows[1]["val/acc"]
    with open(results.run_dir / "sweep_results.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [float(row["task.args.optimizer.lr"]) for row in table] == [0.03, 0.00001]
    for row in results.rows:
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert "test/acc" in summary["metrics"], row
        assert Path(row["run_dir"]).parent.parent == results.run_dir / "trials"
    assert (results.run_dir / "plots" / "sweep_task_args_optimizer_lr.png").is_file()
    assert json.loads((results.run_dir / "summary.json").read_text())["trials"] == 2


LEARNING_RATES = [0.03, 0.01, 0.003]
TINY_SWEEP = {
    "name": "tiny_sweep",
    "task": {"name": "image_classification", "args": {"net": "linear"}},
    "data": {"name": "digits", "args": {"batch_size": 64, "image_size": 8}},
    "trainer": {"max_epochs": 1, "enable_progress_bar": False},
    "stages": ["fit", "test"],
    "sweep": {
        "parameters": {"task.args.optimizer.lr": {"grid": LEARNING_RATES}},
        "metric": "val/acc",
        "mode": "max",
        "max_concurrent": 1,
    },
}


def wait_for_second_trial(runs: Path, driver: subprocess.Popen, log: Path) -> Path:
    """The sweep folder, once its first trial has finished and the next one has made its run
    directory (trials run one at a time). Not as soon as the next trial's folder appears: a kill
    while its run directory is being made leaves an empty folder beside the one the resumed
    trial then makes (nothing ran in it), which is not the case this test is about."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert driver.poll() is None, f"the sweep ended before it was killed:\n{log.read_text()}"
        sweeps = list(runs.glob("tiny_sweep/*"))
        if (
            sweeps
            and len(list(sweeps[0].glob("trials/*/*/spec.resolved.yaml"))) >= 2
            and list(sweeps[0].glob("trials/*/*/summary.json"))
        ):
            return sweeps[0]
        time.sleep(0.2)
    raise AssertionError(f"no trial finished in time:\n{log.read_text()}")


def kill_with_its_ray(driver: subprocess.Popen) -> None:
    """SIGKILL the driver, as a crash would; then end what is left of the embedded Ray it started
    (only its own descendants) and remove that Ray's temp dir."""
    family = _stopped_descendants(psutil.Process(driver.pid))
    temp_dirs = {
        match
        for process in family
        for match in re.findall(r"/tmp/vf-ray-\w+", " ".join(_cmdline(process)))
    }
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    for process in family:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(family, timeout=10)
    for temp_dir in temp_dirs:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stopped_descendants(root: psutil.Process) -> list[psutil.Process]:
    """Every descendant of ``root``, each stopped (SIGSTOP) before its children are listed, so
    that none starts a process the list misses (the raylet starts its agents at any time)."""
    family, generation = [], [root]
    while generation:
        for process in generation:
            with contextlib.suppress(psutil.Error):
                process.suspend()
        generation = [
            child for process in generation for child in _children(process) if child not in family
        ]
        family += generation
    return family


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children()
    except psutil.Error:
        return []


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_a_sweep_whose_driver_was_killed_resumes_every_trial(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({**TINY_SWEEP, "output_dir": str(tmp_path / "runs")}))
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "visionflow", "run", str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        sweep_dir = wait_for_second_trial(tmp_path / "runs", driver, log)
        finished = {
            path.parent.parent.name: path.parent
            for path in sweep_dir.glob("trials/*/*/summary.json")
        }
    finally:
        kill_with_its_ray(driver)
    assert json.loads((sweep_dir / "status.json").read_text())["state"] == "running"

    assert visionflow_cli(["run", "--resume", str(sweep_dir)]) == 0
    with open(sweep_dir / "sweep_results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(float(row["task.args.optimizer.lr"]) for row in rows) == sorted(LEARNING_RATES)
    for row in rows:
        assert row["val/acc"] and not row["error"], row
        assert (
            "test/acc" in json.loads((Path(row["run_dir"]) / "summary.json").read_text())["metrics"]
        )
    for trial, run_dir in finished.items():  # finished before the kill: kept, not run again
        assert [row["run_dir"] for row in rows if Path(row["run_dir"]).parent.name == trial] == [
            str(run_dir)
        ]
    for trial_dir in (sweep_dir / "trials").iterdir():  # an interrupted trial resumed its own
        assert len(run_dirs(trial_dir)) == 1, sorted(trial_dir.iterdir())
    assert json.loads((sweep_dir / "summary.json").read_text())["trials"] == 3
    assert "sweep: 3 trials" in capsys.readouterr().out


def run_dirs(trial_dir: Path) -> list[Path]:
    return [path for path in trial_dir.iterdir() if path.is_dir()]


def test_a_sweep_whose_tune_state_was_truncated_resumes_from_its_trials(
    grid_sweep, tmp_path, caplog
):
    """A driver killed while Tune copied its search state leaves a truncated file: the resume
    sets Tune's state aside, keeps the finished trial and runs the one that never ran."""
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(grid_sweep.run_dir, sweep_dir)
    kept, lost = sorted((sweep_dir / "trials").iterdir())
    kept_run = run_dirs(kept)
    kept_mtime = (kept_run[0] / "summary.json").stat().st_mtime_ns
    shutil.rmtree(lost)
    RunDirectory(sweep_dir).write_status("running")
    state = max((sweep_dir / "tune" / "sweep").glob("basic-variant-state-*.json"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    assert visionflow_cli(["run", "--resume", str(sweep_dir)]) == 0
    with open(sweep_dir / "sweep_results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(float(row["task.args.optimizer.lr"]) for row in rows) == [0.00001, 0.03]
    for row in rows:
        assert row["val/acc"] and not row["error"], row
    assert run_dirs(kept) == kept_run  # kept, not run again
    assert (kept_run[0] / "summary.json").stat().st_mtime_ns == kept_mtime
    assert len(run_dirs(lost)) == 1
    assert json.loads((sweep_dir / "status.json").read_text())["state"] == "completed"
    (aside,) = (sweep_dir / "tune").glob("sweep.unreadable-*")
    assert (aside / state.name).is_file()
    assert f"{state}: unreadable" in caplog.text


def test_a_sweep_of_the_earlier_trial_layout_is_refused_in_one_line(tmp_path):
    """Trial folders named by Ray Tune's ids (the layout before trials/trial_<n>): their trials
    lack what a resumed trial reads, so resuming is refused before Ray runs anything."""
    spec = parse_spec({**TINY_SWEEP, "output_dir": str(tmp_path / "runs")})
    run_dir = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    (run_dir.path / "trials" / "run_trial_4b767_00000").mkdir(parents=True)
    with pytest.raises(VisionFlowError, match="run_trial_4b767_00000: a trial folder of an"):
        resume_sweep(spec, run_dir)
