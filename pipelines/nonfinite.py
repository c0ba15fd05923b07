"""A training loss that turns NaN or infinite: stop the fit, or skip the step, with one line naming
epoch and step.

    trainer = Trainer(callbacks=[NonFiniteLossCheck(), ...])   # build_trainer adds it to every fit
    stages: [{fit: {on_non_finite_loss: skip}}, test]          # the spec's choice of mode

``"stop"`` (the default): each training step's loss is queued in a
:class:`~visionflow.tasks.base.LateFiniteCheck` and read one step later (the epoch's last one before
validation or at the epoch's end), so the check never waits for the GPU. The fit then ends with
:class:`NonFiniteLossError`; the checkpoints written before the bad step stay as they are.

``"skip"``: the loss is read before the optimizer step (one device read a step, the price of
deciding in time); a non-finite one drops every gradient, so the optimizer leaves the weights and
its own state (momentum, Adam's moments) as they were, and one line is printed on rank 0. Under
DDP a step is skipped on every rank when any rank's loss is bad (their gradients are averaged).
The step still counts (``global_step``, step-wise schedules), and the epoch's mean training loss
includes the bad value.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch import Callback

from visionflow.errors import RunError, SpecError
from visionflow.tasks.base import LateFiniteCheck

#: What a fit does on a non-finite training loss (the ``fit`` stage's ``on_non_finite_loss``).
NonFiniteMode = Literal["stop", "skip"]


class NonFiniteLossError(RunError):
    """The training loss became NaN or infinite."""


class NonFiniteLossCheck(Callback):
    """``mode="stop"``: raises :class:`NonFiniteLossError` one step after a training step whose
    loss is not finite. ``mode="skip"``: that step's optimizer update is dropped instead."""

    def __init__(self, mode: NonFiniteMode = "stop") -> None:
        if mode not in ("stop", "skip"):
            raise SpecError(f"on_non_finite_loss: expected 'stop' or 'skip', got {mode!r}")
        self.mode = mode
        self._late = LateFiniteCheck()  # the loss, queued with (epoch, step)
        self._losses: list[torch.Tensor] = []  # of the micro-batches of this optimizer step
        self.skipped_steps = 0

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if self.mode == "skip":
            self._losses.append(loss.detach().float())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.mode != "skip" or not self._losses:
            return
        losses, self._losses = torch.stack(self._losses), []
        bad = not bool(torch.isfinite(losses).all())
        if not trainer.strategy.reduce_boolean_decision(bad, all=False):  # any rank's
            return
        for parameter in pl_module.parameters():
            parameter.grad = None  # torch optimizers pass over a parameter without a gradient
        self.skipped_steps += 1
        if trainer.is_global_zero:
            step = trainer.global_step + 1  # counted as stop mode names it: after the update
            print(
                f"visionflow: warning: the training loss is {_describe(losses)} at epoch "
                f"{trainer.current_epoch}, step {step}: the step is skipped "
                f"({self.skipped_steps} so far)",
                file=sys.stderr,
                flush=True,
            )

    def on_train_batch_end(
        self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.mode != "stop":
            return
        self._check()
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            # global_step already counts this batch's optimizer step: the step is its number
            self._late.queue(loss.float(), context=(trainer.current_epoch, trainer.global_step))

    def on_validation_start(self, trainer, pl_module) -> None:
        self._check()  # before a checkpoint of this epoch can be written

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check()

    def _check(self) -> None:
        bad = self._late.pop_non_finite()
        if bad is None:
            return
        (epoch, step), values = bad
        raise NonFiniteLossError(
            f"the training loss is {values[0] if len(values) == 1 else values} at epoch "
            f"{epoch}, step {step}: training stopped; the checkpoints before it are intact",
            hint="lower task.args.lr, add warmup (task.args.warmup_epochs) or gradient "
            "clipping (trainer.gradient_clip_val), check the data of that step, or skip "
            "such steps (stages: [{fit: {on_non_finite_loss: skip}}, ...])",
        )


def _describe(losses: torch.Tensor) -> str:
    """The first non-finite value of ``losses`` (nan, inf or -inf)."""
    return str(next(v for v in losses.flatten().tolist() if not math.isfinite(v)))
