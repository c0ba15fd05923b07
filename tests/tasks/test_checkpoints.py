"""Every registered task through a Lightning checkpoint (the tiny arguments and data of
tests/test_contract.py): the checkpoint loads with ``weights_only=True`` and restores the trained
task's predictions, and a fit resumed from it ends where an uninterrupted fit does."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from tests.tasks.conftest import quiet_trainer
from tests.test_contract import DATA, TASK_ARGS, builtin
from visionflow.pipelines.runner import PreparedRun, prepare
from visionflow.registry import TASKS
from visionflow.spec import parse_spec
from visionflow.tasks.generative.base import GenerativeTask
from visionflow.tasks.generative.features import FeatureClassifier
from visionflow.tasks.nets.transfer import mark_head

#: task -> the cheapest of its compatible datamodules
DATAMODULE_OF = {
    **dict.fromkeys(["dqn", "policy_gradient", "ppo"], "experience"),
    **dict.fromkeys(["image_classification", "gan", "vae", "pixelcnn"], "digits"),
    **dict.fromkeys(["image_to_mesh", "image_to_pointcloud"], "shapes3d_views"),
    "image_to_occupancy": "shapes3d_occupancy",
    "image_to_voxel": "shapes3d_view_voxels",
    "object_detection": "shapes_detection",
    "instance_segmentation": "shapes_instances",
    "keypoint_detection": "shapes_keypoints",
    "panoptic_segmentation": "shapes_panoptic",
    "semantic_segmentation": "shapes_segmentation",
    "pointcloud_classification": "shapes3d_points",
    "pointcloud_segmentation": "shapes3d_parts",
    "voxel_classification": "shapes3d_voxels",
    **dict.fromkeys(["video_classification", "two_stream"], "moving_shapes"),
}
#: Faster/Mask/Keypoint R-CNN families: several seconds a fit
SLOW = {"object_detection", "instance_segmentation", "keypoint_detection", "panoptic_segmentation"}
#: their rollouts come from environments that a checkpoint does not hold (gymnasium's state)
ENVIRONMENT_TASKS = {"dqn", "policy_gradient", "ppo"}


def task_names(skip: set[str] = frozenset()) -> list[Any]:
    names = sorted(entry.name for entry in builtin(TASKS) if entry.name not in skip)
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


def test_every_task_has_a_datamodule_here():
    assert {entry.name for entry in builtin(TASKS)} <= set(DATAMODULE_OF)


def prepared(name: str, folder: Path) -> PreparedRun:
    """Task ``name`` and its datamodule, built and seeded as the pipeline builds them."""
    data = DATAMODULE_OF[name]
    spec = {
        "name": name,
        "task": {"name": name, "args": TASK_ARGS[name]},
        "data": {"name": data, "args": DATA[data](folder / "data")},
        "stages": ["fit"],
        "output_dir": str(folder / "runs"),
    }
    return prepare(parse_spec(spec))


def fit(run: PreparedRun, folder: Path, epochs: int, ckpt_path: Path | None = None) -> Path:
    """Fit ``epochs`` epochs of 2 batches (from ``ckpt_path`` if given); ``folder/last.ckpt``."""
    trainer = quiet_trainer(
        folder,
        accelerator="cpu",
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[ModelCheckpoint(dirpath=folder, filename="last")],
    )
    trainer.fit(run.task, datamodule=run.datamodule, ckpt_path=ckpt_path, weights_only=True)
    return folder / "last.ckpt"


def with_feature_classifier(task: pl.LightningModule) -> pl.LightningModule:
    """A generative task given a fixed linear feature classifier, so that its evaluation step
    scores samples without training one."""
    if isinstance(task, GenerativeTask):
        h = task.hparams
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(h.in_channels * int(np.prod(h.image_size)), h.num_classes)
        )
        task.feature_classifier = FeatureClassifier(mark_head(net, "1"))
    return task


def predictions(task: pl.LightningModule, batch: Any) -> Any:
    """The task's evaluation-step output on ``batch`` in eval mode, its random draws seeded."""
    with_feature_classifier(task).eval()
    torch.manual_seed(0)
    with torch.inference_mode():
        return task.evaluation_step(batch)


def assert_equal(a: Any, b: Any, where: str = "output") -> None:
    """``a`` and ``b`` hold the same values: tensors, arrays, dataclasses, mappings, sequences."""
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert_equal(vars(a), vars(b), where)
    elif isinstance(a, Mapping):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{index}]")
    elif callable(a):  # an episode batch's player: the task plays it
        return
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    expected, got = a.state_dict(), b.state_dict()
    assert expected.keys() == got.keys()
    differing = [key for key in expected if not torch.equal(expected[key], got[key])]
    assert not differing, f"{len(differing)} of {len(expected)} tensors differ: {differing[:4]}"


@pytest.mark.parametrize("name", task_names())
def test_a_checkpoint_restores_the_trained_tasks_predictions(name, tmp_path, one_torch_thread):
    run = prepared(name, tmp_path)
    path = fit(run, tmp_path, epochs=1)
    torch.load(path, map_location="cpu", weights_only=True)  # no pickled custom object
    restored = type(run.task).load_from_checkpoint(path, map_location="cpu", weights_only=True)
    run.datamodule.setup("test")
    batch = next(iter(run.datamodule.test_dataloader()))
    assert_same_weights(run.task, restored)
    assert_equal(predictions(run.task, batch), predictions(restored, batch))


@pytest.mark.parametrize("name", task_names(skip=ENVIRONMENT_TASKS))
def test_a_resumed_fit_ends_where_an_uninterrupted_one_does(name, tmp_path, one_torch_thread):
    """1 epoch, then a fit resumed from its checkpoint for the 2nd, equals 2 epochs at once: the
    weights and every random draw (a GAN's noise, a VAE's samples) continue where they were."""
    uninterrupted = prepared(name, tmp_path / "whole")
    fit(uninterrupted, tmp_path / "whole", epochs=2)
    first_epoch = fit(prepared(name, tmp_path / "part"), tmp_path / "part", epochs=1)
    resumed = prepared(name, tmp_path / "resumed")
    fit(resumed, tmp_path / "resumed", epochs=2, ckpt_path=first_epoch)
    assert_same_weights(uninterrupted.task, resumed.task)
