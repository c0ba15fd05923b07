"""Score a task on a split in shards: in this process, or one shard per Ray worker (``cluster``).

    evaluation, shards = evaluate_split(context, "test", num_shards=4, backend=backend)
    evaluation.metrics   # {"mAP": ..., "AP50": ...}, equal to a single-process evaluation's

A shard is a contiguous run of *whole batches* of the split's unsharded loader (same dataset,
batch size, order and collate), so each batch holds the same samples however many shards there
are. Each shard runs ``task.evaluation_step`` on its batches (eval mode, inference mode, the
trainer's device and mixed precision) and returns the ``(predictions, targets)`` pairs; the driver
feeds every pair, shard by shard, to one ``task.make_evaluator()``, as the contract in
:mod:`visionflow.evaluation` says. Shards differ only in where they run.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch.utils.data import DataLoader

from visionflow.errors import RunError, SpecError
from visionflow.evaluation import EvaluableTask, Evaluation

Split = Literal["test", "val"]
AUTOCAST_DTYPES = {
    "bf16-mixed": torch.bfloat16,
    "bf16": torch.bfloat16,
    "16-mixed": torch.float16,
    "16": torch.float16,
}
FULL_PRECISIONS = {"32-true", "32"}


@dataclass(frozen=True)
class ShardOutput:
    """One shard's pairs, in batch order, and what it took: samples, batches, seconds."""

    index: int
    pairs: list[tuple[Any, Any]]
    num_samples: int
    seconds: float

    def describe(self) -> dict[str, Any]:
        return {
            "shard": self.index,
            "samples": self.num_samples,
            "batches": len(self.pairs),
            "seconds": round(self.seconds, 3),
        }


class EvaluationBackend(Protocol):
    """Runs ``task.evaluation_step`` over each shard (sample ranges) of ``split``; returns the
    outputs in shard order."""

    def run_shards(self, context: Any, split: Split, shards: list[range]) -> list[ShardOutput]: ...


class LocalEvaluationBackend:
    """Every shard in this process, one after another: the single-process evaluation."""

    def run_shards(self, context: Any, split: Split, shards: list[range]) -> list[ShardOutput]:
        loader = split_loader(context.datamodule, split)
        device = local_device(context.spec.trainer.get("accelerator", "auto"))
        precision = context.spec.trainer.get("precision", "32-true")
        return [
            evaluate_shard(context.task, loader, samples, index, device, precision)
            for index, samples in enumerate(shards)
        ]


def evaluate_split(
    context: Any, split: Split, num_shards: int, backend: EvaluationBackend
) -> tuple[Evaluation, list[ShardOutput]]:
    """Score ``context.task`` on ``split`` in ``num_shards`` shards run by ``backend``."""
    task = check_evaluable(context.task)
    loader = split_loader(context.datamodule, split)
    shards = plan_shards(len(loader.dataset), loader.batch_size, num_shards)
    outputs = backend.run_shards(context, split, shards)
    evaluator = task.make_evaluator()
    evaluator.reset()
    for output in outputs:
        for predictions, targets in output.pairs:
            evaluator.process(predictions, targets)
    return evaluator.evaluate(), outputs


def check_evaluable(task: Any) -> EvaluableTask:
    if not task.supports_evaluation:
        raise SpecError(
            f"stages.evaluate: the task {type(task).__name__} has no evaluation_step / "
            "make_evaluator",
            hint="use the test stage for this task",
        )
    return task


def check_shard_count(num_shards: int) -> None:
    """SpecError naming ``stages.evaluate.shards`` unless ``num_shards`` >= 1."""
    if num_shards < 1:
        raise SpecError(f"stages.evaluate.shards: must be >= 1, got {num_shards}")


def plan_shards(num_samples: int, batch_size: int, num_shards: int) -> list[range]:
    """Contiguous sample ranges that start on batch boundaries and cover ``0..num_samples``, as
    even as whole batches allow; fewer than ``num_shards`` when there are fewer batches."""
    check_shard_count(num_shards)
    batches = math.ceil(num_samples / batch_size)
    shards = max(1, min(num_shards, batches))
    bounds = [batches * i // shards for i in range(shards + 1)]
    return [
        range(start * batch_size, min(stop * batch_size, num_samples))
        for start, stop in zip(bounds[:-1], bounds[1:])
    ]


def split_loader(datamodule: Any, split: Split) -> DataLoader:
    """The datamodule's unsharded loader of ``split`` (``test`` or ``val``)."""
    datamodule.setup("test" if split == "test" else "validate")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise SpecError(
            f"stages.evaluate: the {split} loader of {type(datamodule).__name__} is "
            "not a DataLoader batching by batch_size, so it cannot be sharded",
            hint="use the test stage with this datamodule",
        )
    return loader


def shard_loader(loader: DataLoader, samples: range) -> DataLoader:
    """``loader`` over the samples of one shard: same dataset, batch size and collate."""
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=samples,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
    )


def evaluate_shard(
    task: EvaluableTask,
    loader: DataLoader,
    samples: range,
    index: int,
    device: torch.device,
    precision: Any,
) -> ShardOutput:
    """``task.evaluation_step`` over every batch of one shard, in eval and inference mode."""
    from lightning.fabric.utilities import move_data_to_device

    started = time.perf_counter()
    pairs = []
    with evaluation_mode(task, device), autocast(precision, device):
        for batch in shard_loader(loader, samples):
            pairs.append(task.evaluation_step(move_data_to_device(batch, device)))
    return ShardOutput(index, pairs, len(samples), time.perf_counter() - started)


@contextlib.contextmanager
def evaluation_mode(task: Any, device: torch.device) -> Iterator[None]:
    """The task on ``device`` in eval and inference mode; its train flag restored afterwards."""
    training = task.training
    task.to(device).eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        task.train(training)


def autocast(precision: Any, device: torch.device) -> contextlib.AbstractContextManager:
    """The trainer's ``precision`` for inference: autocast for ``*-mixed``, nothing for 32-bit."""
    name = str(precision)
    if name in AUTOCAST_DTYPES:
        return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[name])
    if name in FULL_PRECISIONS:
        return contextlib.nullcontext()
    raise SpecError(
        f"trainer.precision: {precision!r} is not supported by the evaluate stage",
        hint="use 32-true, 16-mixed or bf16-mixed (or the test stage)",
    )


def local_device(accelerator: str) -> torch.device:
    """The device the trainer's ``accelerator`` means on this machine (one device)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RunError(
                f"trainer.accelerator: {accelerator!r} but this machine has no CUDA device",
                hint="set trainer.accelerator: cpu",
            )
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
