"""A bad value is refused before anything starts: no run directory (not even the parent folder of
``--seeds``) and, under ``resources.backend: ray``, no Ray."""

from __future__ import annotations

import pytest
import ray

from tests.faults.conftest import TINY
from visionflow import cli
from visionflow.spec import parse_spec

BAD_LR = "task.args.optimizer.lr=-1"


@pytest.fixture
def spec_file(tmp_path):
    """The tiny digits spec as a YAML file writing into ``tmp_path/runs``."""
    path = tmp_path / "spec.yaml"
    task = {"name": "image_classification", "args": {"net": "lenet5", "optimizer": {"lr": 0.003}}}
    spec = parse_spec({**TINY, "task": task, "output_dir": str(tmp_path / "runs")})
    path.write_text(spec.to_yaml())
    return path


@pytest.fixture
def ray_must_not_start(monkeypatch):
    """Fail the test if anything calls ``ray.init``."""

    def init(*args, **kwargs):
        raise AssertionError("Ray was started before the values were checked")

    monkeypatch.setattr(ray, "init", init)


def assert_one_line(capsys, expected: str) -> None:
    errors = capsys.readouterr().err
    assert errors.startswith(f"visionflow: error: {expected}"), errors
    assert "Traceback" not in errors
    assert len(errors.splitlines()) <= 2, errors  # the line and its hint


def test_a_bad_value_with_seeds_leaves_no_run_directory(spec_file, tmp_path, capsys):
    assert cli.main(["run", str(spec_file), "--seeds", "2", "--set", BAD_LR]) == 2
    assert_one_line(capsys, "task.args.optimizer.lr: must be > 0, got -1")
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))


@pytest.mark.usefixtures("ray_must_not_start")
def test_a_bad_value_under_backend_ray_is_refused_before_ray_starts(spec_file, tmp_path, capsys):
    assert cli.main(["run", str(spec_file), "--backend", "ray", "--set", BAD_LR]) == 2
    assert_one_line(capsys, "task.args.optimizer.lr: must be > 0, got -1")
    assert not (tmp_path / "runs").exists()


@pytest.mark.usefixtures("ray_must_not_start")
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--seeds", "2", "--set", BAD_LR], "task.args.optimizer.lr: must be > 0, got -1"),
        (["--seeds", "0"], "--seeds: must be >= 1, got 0"),
    ],
)
def test_seeds_under_backend_ray_are_checked_before_ray_starts(
    spec_file, tmp_path, capsys, arguments, expected
):
    assert cli.main(["run", str(spec_file), "--backend", "ray", *arguments]) == 2
    assert_one_line(capsys, expected)
    assert not (tmp_path / "runs").exists()
