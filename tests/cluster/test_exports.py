"""The package's lazily exported names stay functions and classes, even after every submodule
has been imported (a submodule named like an export would replace it on the package)."""

import importlib
import pkgutil

import pytest

import visionflow.cluster as cluster

SUBMODULES = [module.name for module in pkgutil.iter_modules(cluster.__path__)]


def test_every_submodule_is_checked():
    assert {"evaluation", "runner", "train", "train_worker", "jobs"} <= set(SUBMODULES)


@pytest.mark.parametrize("name", cluster.__all__)
def test_export_is_not_shadowed_by_a_submodule(name):
    for module in SUBMODULES:
        importlib.import_module(f"visionflow.cluster.{module}")
    value = getattr(cluster, name)
    assert callable(value) and not isinstance(value, type(importlib)), f"{name} is {value!r}"
