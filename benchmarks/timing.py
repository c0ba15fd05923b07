"""Timing helpers shared by the benchmark scripts (run them as scripts: this folder is on sys.path)."""

from __future__ import annotations

import time

import torch
from lightning.pytorch import Callback


def synchronize() -> None:
    """Wait for queued GPU work, so a host clock reads the end of it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer(Callback):
    """Wall time of training steps ``warmup .. max_steps``; the device is synchronized only at
    the two ends of the window, so the steps between run as asynchronously as they normally do."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            synchronize()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step >= trainer.max_steps:
            synchronize()
            self.end = time.perf_counter()

    def seconds(self) -> float:
        return self.end - self.start


def plain_loop_throughput(
    loss_of_step,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    steps: int,
    warmup: int,
    batch_size: int,
) -> float:
    """Images/s of a hand-written training loop: ``loss_of_step(step)`` under bf16 autocast on
    CUDA, backward, optimizer step; timed over ``steps`` after ``warmup`` untimed ones."""
    cuda = device.type == "cuda"
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_of_step(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def timed_pipeline_fit(spec, warmup: int) -> float:
    """Seconds taken by training steps ``warmup .. max_steps`` of ``spec``'s fit, built exactly as
    ``visionflow run`` builds it (datamodule, task, Trainer with loggers and checkpointing)."""
    from visionflow.pipelines import build_datamodule, build_task, build_trainer, seed_everything
    from visionflow.rundir import RunDirectory

    seed_everything(spec.seed)
    datamodule = build_datamodule(spec)
    datamodule.prepare_data()
    task = build_task(spec, datamodule.info)
    timer = StepTimer(warmup)
    run_dir = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    build_trainer(spec, run_dir, fit=True, monitor=(None, "min"), callbacks=[timer]).fit(
        task, datamodule=datamodule
    )
    return timer.seconds()
