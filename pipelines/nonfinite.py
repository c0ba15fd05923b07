"""Stop a fit whose training loss turns NaN or infinite, with one line naming epoch and step.

    trainer = Trainer(callbacks=[NonFiniteLossCheck(), ...])   # build_trainer adds it to every fit

Each training step's loss is queued through :class:`~visionflow.tasks.base.DeviceReadback` and
read one step later (the epoch's last one before validation or at the epoch's end), so the check
never waits for the GPU. The fit then ends with :class:`NonFiniteLossError`; the checkpoints
written before the bad step stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback

from visionflow.errors import RunError
from visionflow.tasks.base import DeviceReadback


class NonFiniteLossError(RunError):
    """The training loss became NaN or infinite."""


class NonFiniteLossCheck(Callback):
    """Raises :class:`NonFiniteLossError` one step after a training step whose loss is not finite."""

    def __init__(self) -> None:
        self._pending: tuple[int, int, DeviceReadback] | None = None  # (epoch, step, loss)

    def on_train_batch_end(
        self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._check()
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            # global_step already counts this batch's optimizer step: the step is its number
            self._pending = (
                trainer.current_epoch,
                trainer.global_step,
                DeviceReadback(loss.float()),
            )

    def on_validation_start(self, trainer, pl_module) -> None:
        self._check()  # before a checkpoint of this epoch can be written

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check()

    def _check(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        epoch, step, readback = pending
        values = readback.values()
        if not all(math.isfinite(value) for value in values):
            raise NonFiniteLossError(
                f"the training loss is {values[0] if len(values) == 1 else values} at epoch "
                f"{epoch}, step {step}: training stopped; the checkpoints before it are intact",
                hint="lower task.args.lr, add warmup (task.args.warmup_epochs) or gradient "
                "clipping (trainer.gradient_clip_val), or check the data of that step",
            )
