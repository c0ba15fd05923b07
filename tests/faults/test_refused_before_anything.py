"""A bad value is refused before anything starts: no run directory (not even the parent folder of
``--seeds``) and, under ``resources.backend: ray``, no Ray."""

from __future__ import annotations

import pytest
import ray
import yaml

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


SHAPES_DETECTION = {
    "task": {"name": "object_detection", "args": {"net": "fasterrcnn_mobilenet_v3_large_fpn"}},
    "data": {
        "name": "shapes_detection",
        "args": {"data_dir": "DATA_DIR", "train_images": 4, "val_images": 2, "test_images": 2},
    },
}
DIGITS_VAE = {"task": {"name": "vae", "args": {"net_args": {"latent_dim": 4, "width": 8}}}}


@pytest.mark.parametrize(
    ("changes", "stage", "expected"),
    [
        (
            SHAPES_DETECTION,
            "understand",
            "stages[1].understand: needs an image_classification task, got object_detection",
        ),
        (
            DIGITS_VAE,
            "adversarial",
            "stages[1].adversarial: needs an image_classification task, got vae",
        ),
        (DIGITS_VAE, "backdoor", "stages[1].backdoor: needs an image_classification task, got vae"),
        (
            DIGITS_VAE,
            "predict",
            "stages[1].predict: needs a task that defines predict_step, got vae",
        ),
        (
            SHAPES_DETECTION,
            "knn",
            "stages[1].knn: needs data yielding ImageClassificationBatch, "
            "got shapes_detection (DetectionBatch)",
        ),
    ],
)
def test_a_stage_that_does_not_fit_the_task_or_data_is_refused_before_the_fit(
    tmp_path, capsys, changes, stage, expected
):
    """A stage that needs an image classifier (or its data) after ``fit`` on another task was
    refused only when its turn came, after the fit had trained into a new run directory (the
    VAE's even as a traceback: it has no ``forward``)."""
    path = tmp_path / "spec.yaml"
    raw = {**TINY, **changes, "stages": ["fit", stage], "output_dir": str(tmp_path / "runs")}
    path.write_text(yaml.safe_dump(raw).replace("DATA_DIR", str(tmp_path / "shapes")))
    assert cli.main(["run", str(path)]) == 2
    assert_one_line(capsys, f"{path}: {expected}")  # the spec's own check, as for a bad key
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ({"adversarial": {"steps": 0}}, "stages.adversarial.steps: must be >= 1, got 0"),
        (
            {"understand": {"methods": ["salency"]}},
            "stages.understand.methods: unknown method 'salency'; did you mean 'saliency'?",
        ),
        ({"evaluate": {"shards": 0}}, "stages.evaluate.shards: must be >= 1, got 0"),
    ],
)
def test_a_bad_stage_argument_is_refused_before_the_fit(
    spec_file, tmp_path, capsys, stage, expected
):
    """These stages checked their arguments only when their turn came, after the fit."""
    raw = yaml.safe_load(spec_file.read_text())
    spec_file.write_text(yaml.safe_dump({**raw, "stages": ["fit", stage]}))
    assert cli.main(["run", str(spec_file)]) == 2
    assert_one_line(capsys, expected)
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))
