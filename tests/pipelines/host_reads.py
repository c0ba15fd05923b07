"""The device-read recorder of the host-read tests: a ``TorchFunctionMode`` that records every
read of a tensor's value on the host during a window of training steps of a real pipeline fit."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

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
#: before its transfer to the device; the DataLoader's loading of samples (in this process when
#: ``num_workers`` is 0), which makes CPU tensors
HOST_SIDE = (
    "DeviceReadback.values",
    ".on_before_batch_transfer",
    "_MapDatasetFetcher.fetch",
    "_IterableDatasetFetcher.fetch",
)


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


def shapes_data(name: str, folder: Path) -> dict:
    """The data section of a tiny run on generated shapes (``name``: shapes_detection,
    shapes_segmentation, ...): 8 training images of 64 px in batches of 2 (4 steps an epoch),
    2 validation and 2 test images, written to ``folder``."""
    return {
        "name": name,
        "args": {
            "data_dir": str(folder),
            "train_images": 8,
            "val_images": 2,
            "test_images": 2,
            "image_size": 64,
            "batch_size": 2,
        },
    }
