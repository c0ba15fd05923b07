"""Every registered task on every compatible registered datamodule, through the real pipeline.

A new task or datamodule fails ``test_every_registered_name_has_a_fixture`` until it is given
small arguments here, so it is run end to end (``fast_dev_run``) the day it is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.datamodules.test_cifar import write_cifar10, write_cifar100
from tests.datamodules.test_image_folder import write_folder
from tests.datamodules.test_mnist import write_idx_set
from visionflow.pipelines import run
from visionflow.registry import DATAMODULES, TASKS
from visionflow.spec import parse_spec

SMALL = {"batch_size": 4, "num_workers": 0}


def _mnist(root: Path) -> dict[str, Any]:
    write_idx_set(root / "MNIST" / "raw")
    return {"root": str(root), **SMALL}


def _fashion(root: Path) -> dict[str, Any]:
    write_idx_set(root / "FashionMNIST" / "raw")
    return {"root": str(root), **SMALL}


def _cifar10(root: Path) -> dict[str, Any]:
    write_cifar10(root)
    return {"root": str(root), **SMALL}


def _cifar100(root: Path) -> dict[str, Any]:
    write_cifar100(root, binary=False)
    return {"root": str(root), **SMALL}


def _image_folder(root: Path) -> dict[str, Any]:
    return {"root": str(write_folder(root / "images")), "image_size": 32, **SMALL}


#: datamodule name -> writes small data under a folder and returns the datamodule's arguments
DATA: dict[str, Callable[[Path], dict[str, Any]]] = {
    "digits": lambda root: {"limit": 40, **SMALL},
    "mnist": _mnist,
    "fashion_mnist": _fashion,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "image_folder": _image_folder,
}

#: task name -> small arguments
TASK_ARGS: dict[str, dict[str, Any]] = {
    "image_classification": {"net": "lenet5", "scheduler": "none"},
}


def compatible_pairs() -> list[tuple[str, str]]:
    return [(task.name, data.name) for task in TASKS.entries() for data in DATAMODULES.entries()
            if task.tags.get("batch") is data.tags.get("batch")]


def test_every_registered_name_has_a_fixture():
    assert set(DATAMODULES.names()) <= set(DATA), "give the new datamodule a fixture in DATA"
    assert set(TASKS.names()) <= set(TASK_ARGS), "give the new task arguments in TASK_ARGS"
    assert compatible_pairs(), "no task has a compatible datamodule"


@pytest.mark.parametrize("task, data", compatible_pairs())
def test_task_runs_on_datamodule(task, data, tmp_path):
    spec = parse_spec({
        "name": f"{task}-{data}",
        "task": {"name": task, "args": TASK_ARGS[task]},
        "data": {"name": data, "args": DATA[data](tmp_path / "data")},
        "trainer": {"fast_dev_run": True, "accelerator": "cpu", "enable_progress_bar": False},
        "stages": ["fit", "test"],
        "output_dir": str(tmp_path / "runs"),
    })
    results = run(spec)
    assert set(results.stages) == {"fit", "test"}
    assert results.stages["test"], "the test stage logged no metric"
    assert (results.run_dir / "summary.json").is_file()
