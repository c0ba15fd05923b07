"""Optimizers and learning-rate schedules, shared by every task.

Tasks take the same keys (``optimizer, lr, momentum, nesterov, weight_decay, scheduler,
warmup_epochs, step_size, gamma``) and call :func:`check_optimizer_args` and
:func:`check_scheduler_args` in ``__init__`` (a bad spec fails before training), then
:func:`build_optimizer` and :func:`build_scheduler` in ``configure_optimizers``.

``momentum`` is SGD's and RMSprop's momentum and Adam's/AdamW's beta1; ``None`` keeps each
optimizer's default (SGD: 0.9, RMSprop: 0, Adam/AdamW: 0.9). Adagrad has none.

The schedule is a factor on each param group's LR (so a lower backbone LR keeps its ratio), as a
function of the (fractional) epoch ``t``:

- linear warmup for ``t < warmup_epochs``: ``(step + 1) / warmup_steps``, reaching 1 at the end;
- ``none``: 1; ``step``: ``gamma ** floor(t / step_size)``; ``cosine``: ``0.5 (1 + cos(pi p))``
  with ``p = (t - warmup_epochs) / (max_epochs - warmup_epochs)``, from 1 down to 0.

With ``steps_per_epoch`` it is updated every optimizer step, else once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch

from visionflow.errors import SpecError

OptimizerName = Literal["sgd", "adagrad", "rmsprop", "adam", "adamw"]
SchedulerName = Literal["none", "step", "cosine"]
DEFAULT_MOMENTUM = {"sgd": 0.9, "rmsprop": 0.0, "adam": 0.9, "adamw": 0.9}
KEY = "task.args."


def check_optimizer_args(name: str, lr: float, momentum: float | None, nesterov: bool,
                         weight_decay: float) -> None:
    """Raise SpecError naming the key of the first bad value or combination."""
    if name not in DEFAULT_MOMENTUM and name != "adagrad":
        raise SpecError(f"{KEY}optimizer: unknown optimizer {name!r}",
                        hint="one of sgd, adagrad, rmsprop, adam, adamw")
    if not lr > 0:
        raise SpecError(f"{KEY}lr: must be > 0, got {lr}")
    if weight_decay < 0:
        raise SpecError(f"{KEY}weight_decay: must be >= 0, got {weight_decay}")
    if momentum is not None and not 0 <= momentum < 1:
        raise SpecError(f"{KEY}momentum: must be in [0, 1), got {momentum}")
    if momentum is not None and name == "adagrad":
        raise SpecError(f"{KEY}momentum: adagrad has no momentum", hint="remove the key")
    if nesterov and name != "sgd":
        raise SpecError(f"{KEY}nesterov: only sgd has Nesterov momentum, not {name}")
    if nesterov and _momentum(name, momentum) == 0:
        raise SpecError(f"{KEY}nesterov: needs momentum > 0", hint="e.g. momentum: 0.9")


def _momentum(name: str, momentum: float | None) -> float:
    return DEFAULT_MOMENTUM.get(name, 0.0) if momentum is None else momentum


def build_optimizer(param_groups: Iterable[Any], name: OptimizerName, lr: float,
                    momentum: float | None = None, nesterov: bool = False,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer over ``param_groups`` (parameters, or dicts with ``params`` and an ``lr``)."""
    check_optimizer_args(name, lr, momentum, nesterov, weight_decay)
    momentum = _momentum(name, momentum)
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, momentum=momentum,
                                   weight_decay=weight_decay)
    adam = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return adam(param_groups, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


def check_scheduler_args(name: str, warmup_epochs: int, step_size: int, gamma: float) -> None:
    """Raise SpecError naming the key of the first bad value (max_epochs is checked at build)."""
    if name not in ("none", "step", "cosine"):
        raise SpecError(f"{KEY}scheduler: unknown schedule {name!r}",
                        hint="one of none, step, cosine")
    if warmup_epochs < 0:
        raise SpecError(f"{KEY}warmup_epochs: must be >= 0, got {warmup_epochs}")
    if name == "step" and step_size < 1:
        raise SpecError(f"{KEY}step_size: must be >= 1, got {step_size}")
    if name == "step" and not 0 < gamma <= 1:
        raise SpecError(f"{KEY}gamma: must be in (0, 1], got {gamma}")


def build_scheduler(optimizer: torch.optim.Optimizer, name: SchedulerName,
                    max_epochs: float | None, warmup_epochs: int = 0, step_size: int = 30,
                    gamma: float = 0.1,
                    steps_per_epoch: int | None = None) -> dict[str, Any] | None:
    """Lightning's lr_scheduler config (``{"scheduler", "interval", "frequency"}``), or ``None``
    when there is nothing to schedule (``none`` without warmup). ``max_epochs`` is the training
    length, fractional when ``max_steps`` ends training inside an epoch."""
    check_scheduler_args(name, warmup_epochs, step_size, gamma)
    finite = max_epochs is not None and max_epochs > 0
    if name == "cosine" and not finite:
        raise SpecError(f"trainer.max_epochs: the cosine schedule needs a finite max_epochs "
                        f"(or max_steps), got {max_epochs}")
    if name == "cosine" and warmup_epochs >= max_epochs:
        raise SpecError(f"{KEY}warmup_epochs: {warmup_epochs} must be less than the "
                        f"{max_epochs:g} training epochs for the cosine schedule")
    if name == "none" and warmup_epochs == 0:
        return None
    per_step = steps_per_epoch is not None
    factor = lr_factor(name, max_epochs or 0, warmup_epochs, step_size, gamma, steps_per_epoch or 1)
    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor),
            "interval": "step" if per_step else "epoch", "frequency": 1}


def lr_factor(name: SchedulerName, max_epochs: float, warmup_epochs: int, step_size: int,
              gamma: float, steps_per_epoch: int = 1) -> Callable[[int], float]:
    """``factor(step) -> float``, the LR multiplier after ``step`` scheduler updates."""
    warmup_steps = warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if name == "step":
            return gamma ** (step // (step_size * steps_per_epoch))
        if name == "cosine":
            epoch = step / steps_per_epoch
            progress = min(1.0, (epoch - warmup_epochs) / (max_epochs - warmup_epochs))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


def training_length(trainer: Any) -> tuple[float | None, int | None]:
    """``(epochs, optimizer steps per epoch)`` of ``trainer``'s fit on this rank, for
    :func:`build_scheduler`. ``epochs`` counts ``max_steps`` too and may be fractional; steps
    are None when an epoch has no length (an iterable dataset)."""
    trainer.fit_loop.setup_data()  # load the train dataloader now (Lightning would next)
    batches = trainer.num_training_batches
    if math.isinf(batches):
        return trainer.max_epochs, None
    steps_per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
    total_steps = trainer.estimated_stepping_batches
    if math.isinf(total_steps):
        return trainer.max_epochs, steps_per_epoch
    return total_steps / steps_per_epoch, steps_per_epoch
