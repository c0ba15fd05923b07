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

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback
from torch.overrides import TorchFunctionMode

from visionflow.pipelines import build_datamodule, build_task, build_trainer, seed_everything
from visionflow.rundir import RunDirectory
from visionflow.spec import parse_spec

#: tensor methods and functions whose result the host can only have once the device is done
READS = frozenset(
    {
        "item",
        "tolist",
        "numpy",
        "__array__",
        "__bool__",
        "__float__",
        "__int__",
        "__index__",
        "__format__",
        "cpu",
        "nonzero",
        "argwhere",
        "unique",
        "unique_consecutive",
        "masked_select",
        "repeat_interleave",
        "equal",
        "allclose",
    }
)
#: functions whose reads touch host memory only: pinned copies behind an event; the batch
#: before its transfer to the device
HOST_SIDE = ("DeviceReadback.values", ".on_before_batch_transfer")


def is_read(func, args) -> bool:
    name = getattr(func, "__name__", "")
    if name in READS:
        return True
    if name in ("__getitem__", "__setitem__") and len(args) > 1:
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)
    return name == "where" and len(args) == 1  # torch.where(condition): indices


def unexpected_reader() -> str | None:
    """``file:function`` of the innermost frame outside torch and this module that made the read,
    or None when the read is expected: in torchvision (the detectors' own, which the plain
    training loop makes too) or within a HOST_SIDE function."""
    frame, reader = sys._getframe(2), None
    while frame is not None:
        code = frame.f_code
        if code.co_qualname.endswith(HOST_SIDE):
            return None
        if reader is None and "/torch/" not in code.co_filename and code.co_filename != __file__:
            if "/torchvision/" in code.co_filename:
                return None
            reader = f"{Path(code.co_filename).name}:{code.co_qualname}"
        frame = frame.f_back
    return reader


class HostReads(TorchFunctionMode):
    """Counts device reads by ``name at file:function`` while active."""

    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if is_read(func, args) and (reader := unexpected_reader()) is not None:
            self.counts[f"{getattr(func, '__name__', func)} at {reader}"] += 1
        return func(*args, **(kwargs or {}))


class RecordSteps(Callback):
    """Records training batches ``first .. last - 1`` (counted over the fit, from 0): fetching,
    transfer, the step's hooks, forward, backward and optimizer step. Reads at an epoch's end
    (logging, checkpointing) are once an epoch and not recorded: keep the window in one epoch."""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last
        self.reads = HostReads()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.first:
            self.reads.__enter__()
        elif trainer.global_step == self.last:
            self.reads.__exit__(None, None, None)


class RecordEvaluation(Callback):
    """Records the validation batches of epoch ``epoch`` and the test batches (not the task's
    epoch-end logging, which runs after the callbacks' epoch-end hooks)."""

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.reads = HostReads()
        self.recorded: list[str] = []

    def _records(self, trainer) -> bool:
        return trainer.current_epoch == self.epoch and not trainer.sanity_checking

    def on_validation_epoch_start(self, trainer, pl_module):
        if self._records(trainer):
            self.reads.__enter__()
            self.recorded.append("validate")

    def on_validation_epoch_end(self, trainer, pl_module):
        if self._records(trainer):
            self.reads.__exit__(None, None, None)

    def on_test_epoch_start(self, trainer, pl_module):
        self.reads.__enter__()
        self.recorded.append("test")

    def on_test_epoch_end(self, trainer, pl_module):
        self.reads.__exit__(None, None, None)


def reads_during_fit(
    spec_dict: dict, recorder: RecordSteps | RecordEvaluation, steps: int
) -> Counter[str]:
    """What ``recorder`` counted during a fit of ``steps`` steps of the spec (and its test, when
    the recorder records evaluation)."""
    spec = parse_spec(
        {**spec_dict, "stages": ["fit"], "trainer": {**spec_dict["trainer"], "max_steps": steps}}
    )
    seed_everything(spec.seed)
    datamodule = build_datamodule(spec)
    datamodule.prepare_data()
    task = build_task(spec, datamodule.info)
    run_dir = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    trainer = build_trainer(spec, run_dir, fit=True, monitor=(None, "min"), callbacks=[recorder])
    trainer.fit(task, datamodule=datamodule)
    assert trainer.global_step == steps
    if isinstance(recorder, RecordEvaluation):
        trainer.test(task, datamodule=datamodule, verbose=False)
    return recorder.reads.counts


def trainer_args(**overrides) -> dict:
    return {
        "accelerator": "cpu",
        "devices": 1,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1000,
        "enable_progress_bar": False,
        **overrides,
    }


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
            "data": {
                "name": data,
                "args": {
                    "data_dir": str(tmp_path / "shapes"),
                    "train_images": 8,
                    "val_images": 2,
                    "test_images": 2,
                    "image_size": 64,
                    "batch_size": 2,
                },
            },
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
        "data": {
            "name": "shapes_segmentation",
            "args": {
                "data_dir": str(root / "shapes"),
                "train_images": 8,
                "val_images": 2,
                "test_images": 2,
                "image_size": 64,
                "batch_size": 2,
            },
        },
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


def video_spec(root: Path, task: str, task_args: dict, **trainer) -> dict:
    """A tiny video net on MovingShapes (4 videos a class: 6 training batches an epoch), SGD
    (AdamW's CPU implementation reads its step count back; its CUDA one does not)."""
    return {
        "name": "host_reads",
        "task": {
            "name": task,
            "args": {"optimizer": "sgd", "lr": 0.01, "scheduler": "cosine", **task_args},
        },
        "data": {
            "name": "moving_shapes",
            "args": {
                "data_dir": str(root / "moving_shapes"),
                "train_videos": 4,
                "val_videos": 1,
                "test_videos": 1,
                "frames": 6,
                "frame_size": 16,
                "clip_length": 4,
                "flow_frames": 2,
                "batch_size": 4,
            },
        },
        "trainer": trainer_args(**trainer),
        "output_dir": str(root / "runs"),
    }


@pytest.mark.parametrize(
    "task, task_args",
    [
        ("video_classification", {"net": "single_frame", "net_args": {"width": 4}}),
        (
            "two_stream",
            {
                "rgb_net_args": {"width": 4},
                "flow_net": "mlp",
                "flow_net_args": {"hidden_sizes": [8]},
                "fusion": "learned",
            },
        ),
    ],
)
def test_video_training_steps_read_nothing_back(tmp_path, task, task_args):
    counts = reads_during_fit(video_spec(tmp_path, task, task_args), RecordSteps(7, 12), steps=12)
    assert not counts, dict(counts)  # the second epoch's 6 steps


def test_video_validation_and_test_steps_read_nothing_back(tmp_path):
    recorder = RecordEvaluation(epoch=1)
    spec = video_spec(
        tmp_path,
        "video_classification",
        {"net": "single_frame", "net_args": {"width": 4}},
        limit_val_batches=1.0,
    )
    counts = reads_during_fit(spec, recorder, steps=12)
    assert recorder.recorded == ["validate", "test"] and not counts, dict(counts)
