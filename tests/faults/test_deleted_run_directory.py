"""The run directory deleted under a running job: one line saying so, exit 1, no traceback, and
the folder is not made again (half a run directory would pass for a run); the other runs in
``output_dir`` are untouched."""

from __future__ import annotations

import shutil

import pytest

from tests.faults.conftest import TINY
from visionflow import cli
from visionflow.spec import parse_spec
from visionflow.tasks.classification import ImageClassificationTask

pytestmark = pytest.mark.slow


def test_a_run_directory_deleted_mid_fit_stops_the_run_with_one_line(tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "runs"
    other_run = output_dir / "fault" / "20200101-000000"
    other_run.mkdir(parents=True)
    (other_run / "summary.json").write_text("{}")
    real = ImageClassificationTask.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == 25:  # epoch 1: delete this run's folder under it
            shutil.rmtree(self.trainer.default_root_dir)
        return real(self, batch, batch_idx)

    monkeypatch.setattr(ImageClassificationTask, "training_step", training_step)
    spec = tmp_path / "spec.yaml"
    spec.write_text(parse_spec({**TINY, "output_dir": str(output_dir)}).to_yaml())
    assert cli.main(["run", str(spec)]) == 1
    errors = capsys.readouterr().err
    assert "Traceback" not in errors, errors
    (line,) = [line for line in errors.splitlines() if line.startswith("visionflow: error:")]
    assert line.endswith(": the run directory was deleted while the run was writing to it"), line
    assert sorted(p.name for p in (output_dir / "fault").iterdir()) == [other_run.name]
    assert (other_run / "summary.json").read_text() == "{}"
