"""Training steps of real pipeline fits read nothing back from the device.

On a GPU, reading a tensor's value on the host (``.item()``, ``bool(t)``, ``.tolist()``, ``.cpu()``,
a boolean-mask selection, ``nonzero``, ...) waits for every kernel queued so far, so a fit whose
steps read values back cannot keep the GPU fed (docs/benchmarks.md). The same calls happen on the
CPU, so recording them with a ``TorchFunctionMode`` over a window of training steps of a fit built
exactly as ``visionflow run`` builds it finds them without a GPU. Expected: reads inside
torchvision's detectors (the plain training loop of the benchmark makes the same ones) and
reads of host memory (``DeviceReadback.values``, ``on_before_batch_transfer``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.pipelines.host_reads import (
    HostReads,
    RecordEvaluation,
    RecordSteps,
    reads_during_fit,
    shapes_data,
    trainer_args,
)


def classification_spec(root: Path, transforms: str, **trainer) -> dict:
    """LeNet-5 on 260 CIFAR-format images: 15 training and 2 validation batches an epoch."""
    from tests.datamodules.test_cifar import write_cifar10

    write_cifar10(root / "cifar", per_batch=52, test=16)
    return {
        "name": "host_reads",
        "task": {
            "name": "image_classification",
            "args": {
                "net": "lenet5",
                "optimizer": "sgd",
                "momentum": 0.9,
                "scheduler": "cosine",
                "warmup_epochs": 1,
            },
        },
        "data": {
            "name": "cifar10",
            "args": {
                "root": str(root / "cifar"),
                "batch_size": 16,
                "transforms": {"train": transforms},
            },
        },
        "trainer": trainer_args(**trainer),
        "output_dir": str(root / "runs"),
    }


def test_the_recorder_sees_the_reads_that_stall_a_gpu():
    reads = HostReads()
    values = torch.tensor([1.0, -2.0, 3.0])
    with reads:
        values.sum().item()
        bool(values[0] > 0)
        values[values > 0]
        values.tolist()
        values * 2  # no read
        values[torch.tensor([0, 2])]  # integer indices: no read
    assert sorted(name.split(" at ")[0] for name in reads.counts.elements()) == [
        "__bool__",
        "__getitem__",
        "item",
        "tolist",
    ]


@pytest.mark.parametrize("transforms", ["cifar_train", "cifar_eval"])
def test_classification_steps_read_nothing_back(tmp_path, transforms):
    counts = reads_during_fit(
        classification_spec(tmp_path, transforms), RecordSteps(16, 30), steps=30
    )  # the second epoch's 15 steps
    assert not counts, dict(counts)


def test_classification_validation_and_test_steps_read_nothing_back(tmp_path):
    recorder = RecordEvaluation(epoch=1)
    counts = reads_during_fit(
        classification_spec(tmp_path, "cifar_train", limit_val_batches=1.0), recorder, steps=30
    )
    assert recorder.recorded == ["validate", "test"] and not counts, dict(counts)


@pytest.mark.slow
@pytest.mark.parametrize(
    "task, net, data, task_args",
    [
        ("object_detection", "fasterrcnn_mobilenet_v3_large_fpn", "shapes_detection", {}),
        ("instance_segmentation", "maskrcnn_mobilenet_v3_large_fpn", "shapes_instances", {}),
        (
            "keypoint_detection",
            "keypointrcnn_mobilenet_v3_large_fpn",
            "shapes_keypoints",
            {"keypoint_sigmas": [0.05] * 4},
        ),
    ],
)
def test_detection_steps_read_nothing_back_beyond_torchvision(tmp_path, task, net, data, task_args):
    counts = reads_during_fit(
        {
            "name": "host_reads",
            "task": {
                "name": task,
                "args": {
                    "net": net,
                    "optimizer": "sgd",
                    "lr": 0.01,
                    "net_args": {"min_size": 64, "max_size": 64},
                    **task_args,
                },
            },
            "data": shapes_data(data, tmp_path / "shapes"),
            "trainer": trainer_args(),
            "output_dir": str(tmp_path / "runs"),
        },
        RecordSteps(5, 8),
        steps=8,
    )  # epoch 2's 4 steps
    assert not counts, dict(counts)


def segmentation_spec(root: Path, **trainer) -> dict:
    """A tiny U-Net on 8 shapes images of 64 px: 4 training batches an epoch."""
    return {
        "name": "host_reads",
        "task": {
            "name": "semantic_segmentation",
            "args": {
                "net": "unet",
                "net_args": {"depth": 2, "width": 4},
                "dice_weight": 0.5,
                "optimizer": "sgd",
                "scheduler": "none",
            },
        },
        "data": shapes_data("shapes_segmentation", root / "shapes"),
        "trainer": trainer_args(**trainer),
        "output_dir": str(root / "runs"),
    }


def test_segmentation_training_validation_and_test_steps_read_nothing_back(tmp_path):
    counts = reads_during_fit(segmentation_spec(tmp_path), RecordSteps(5, 8), steps=8)
    assert not counts, dict(counts)
    recorder = RecordEvaluation(epoch=1)
    counts = reads_during_fit(segmentation_spec(tmp_path, limit_val_batches=1.0), recorder, steps=8)
    assert recorder.recorded == ["validate", "test"] and not counts, dict(counts)


def test_adversarial_training_steps_read_nothing_back(tmp_path):
    spec = classification_spec(tmp_path, "cifar_eval")
    spec["task"]["args"]["adversarial"] = {"attack": "pgd", "epsilon": 0.03, "steps": 2}
    counts = reads_during_fit(spec, RecordSteps(16, 30), steps=30)
    assert not counts, dict(counts)


@pytest.mark.parametrize(
    "task, args",
    [
        ("ppo", {"update_epochs": 1, "minibatches": 1}),  # one optimizer step per rollout
        ("dqn", {"learning_starts": 8, "batch_size": 8}),
        ("policy_gradient", {}),
    ],
)
def test_rl_steps_read_back_only_the_actions_the_environments_need(tmp_path, task, args):
    """Acting reads each step's actions (the environments are host code); the learning reads
    nothing but Adam's step counter, which torch keeps in host memory (a CPU tensor unless the
    optimizer is capturable or fused)."""
    counts = reads_during_fit(
        {
            "name": "host_reads",
            "task": {"name": task, "args": args},
            "data": {
                "name": "experience",
                "args": {"num_envs": 2, "rollout_steps": 4, "rollouts_per_epoch": 12},
            },
            "trainer": trainer_args(),
            "output_dir": str(tmp_path / "runs"),
        },
        RecordSteps(4, 10),
        steps=10,
    )
    assert set(counts) <= {
        "cpu at experience.py:RolloutStream._step",
        "numpy at experience.py:RolloutStream._step",
        "item at precision.py:Precision.optimizer_step",
    }, dict(counts)
