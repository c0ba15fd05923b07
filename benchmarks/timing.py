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
