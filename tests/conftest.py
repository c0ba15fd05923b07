"""Shared test setup: offline-safe environment, the shared real-data folder, GPU skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# one intra-op thread in the test process and in every process it starts (CLI runs, Ray
# workers): the tensors here are tiny, and on a 2-core CI box two OpenMP threads per process
# spin against the other processes' instead of helping
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (real third-party files); skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shapes_panoptic(tmp_path_factory):
    """A ShapesPanopticDataModule of two 48 px images per split, batch size 2, files written."""
    from visionflow.datamodules.panoptic import ShapesPanopticDataModule

    counts = {"train_images": 2, "val_images": 2, "test_images": 2}
    folder = tmp_path_factory.mktemp("shapes_panoptic")
    dm = ShapesPanopticDataModule(str(folder), **counts, image_size=48, batch_size=2)
    dm.prepare_data()
    return dm


def pytest_collection_modifyitems(config, items):
    import torch

    # under pytest-xdist (`make test` runs `-n auto --dist loadgroup`) every test that starts Ray
    # runs on one worker, one after another: one local Ray at a time, as each test expects (and
    # without xdist, `-p no:xdist`, the marker is not registered, and not needed)
    for item in items:
        if "ray" in item.keywords and config.pluginmanager.hasplugin("xdist"):
            item.add_marker(pytest.mark.xdist_group("ray"))
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
