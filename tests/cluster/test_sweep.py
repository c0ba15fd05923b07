"""A real Ray Tune sweep: each trial a full VisionFlow run, a results table and a plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import visionflow.cluster  # noqa: F401  (before ray: sets Ray's log filter at ray's import)

pytest.importorskip("ray")

from tests.conftest import REPO_ROOT  # noqa: E402
from visionflow import cluster  # noqa: E402
from visionflow.spec import load_spec  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_grid_sweep_runs_every_trial_and_ranks_them(tmp_path):
    spec = load_spec(REPO_ROOT / "examples" / "digits_classification.yaml", [
        f"output_dir={tmp_path}", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
        "task.args.net=linear", "stages=[fit, test]",
        "sweep={parameters: {task.args.lr: {grid: [0.03, 0.00001]}}, metric: val/acc, "
        "mode: max, max_concurrent: 2}"])
    results = cluster.sweep(spec)

    assert len(results.rows) == 2
    assert [row["task.args.lr"] for row in results.rows] == [0.03, 0.00001]  # best first
    assert results.best["val/acc"] > results.rows[1]["val/acc"]
    with open(results.run_dir / "sweep_results.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [float(row["task.args.lr"]) for row in table] == [0.03, 0.00001]
    for row in results.rows:
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert "test/acc" in summary["metrics"], row
        assert Path(row["run_dir"]).parent.parent == results.run_dir / "trials"
    assert (results.run_dir / "plots" / "sweep_task_args_lr.png").is_file()
    assert json.loads((results.run_dir / "summary.json").read_text())["trials"] == 2
