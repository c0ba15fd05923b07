"""Optimizers and learning-rate schedules, shared by every task.

Every task takes the same two sub-configs, declared once here and inherited from
:class:`visionflow.tasks.base.VisionTask`::

    task:
      args:
        optimizer: {name: adamw, lr: 0.003, weight_decay: 0.0001}   # OptimizerConfig
        scheduler: {name: cosine, warmup_epochs: 1}                  # SchedulerConfig

Keys left out keep the task's defaults, and a name alone (``optimizer: sgd``) changes only the
name; the spec checker knows both dataclasses, so a misspelt key fails with a suggestion before
anything runs. The flat keys of earlier releases
(``lr``, ``momentum``, ``nesterov``, ``weight_decay``, ``warmup_epochs``, ``step_size``,
``gamma``) still work, with a deprecation line
(:func:`upgrade_flat_keys`).

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

import dataclasses
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from visionflow.errors import SpecError, deprecated

OptimizerName = Literal["sgd", "adagrad", "rmsprop", "adam", "adamw"]
SchedulerName = Literal["none", "step", "cosine"]
DEFAULT_MOMENTUM = {"sgd": 0.9, "rmsprop": 0.0, "adam": 0.9, "adamw": 0.9}
KEY = "optimizer."
SCHEDULE_KEY = "scheduler."


@dataclass(frozen=True)
class OptimizerConfig:
    """``optimizer:`` of every task. ``momentum`` is SGD's and RMSprop's momentum and Adam's/AdamW's
    beta1 (``None``: each optimizer's default); Adagrad has none."""

    name: OptimizerName = "adamw"
    lr: float = 1e-3
    momentum: float | None = None
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        check_optimizer_args(self.name, self.lr, self.momentum, self.nesterov, self.weight_decay)

    def build(self, param_groups: Iterable[Any]) -> torch.optim.Optimizer:
        return build_optimizer(
            param_groups, self.name, self.lr, self.momentum, self.nesterov, self.weight_decay
        )


@dataclass(frozen=True)
class SchedulerConfig:
    """``scheduler:`` of every task: ``name`` none | step | cosine, a linear warmup of
    ``warmup_epochs``, and the step schedule's ``step_size`` (epochs) and ``gamma``."""

    name: SchedulerName = "cosine"
    warmup_epochs: int = 0
    step_size: int = 30
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_scheduler_args(self.name, self.warmup_epochs, self.step_size, self.gamma)

    def build(self, optimizer: torch.optim.Optimizer, trainer: Any) -> dict[str, Any] | None:
        epochs, steps_per_epoch = training_length(trainer)
        warmup = self.warmup_epochs
        if warmup and epochs is not None and warmup >= epochs and is_smoke_run(trainer):
            warmup = 0  # fast_dev_run / limit_train_batches: a smoke run skips the warmup
        return build_scheduler(
            optimizer,
            self.name,
            epochs,
            warmup,
            self.step_size,
            self.gamma,
            steps_per_epoch=steps_per_epoch,
        )


def is_smoke_run(trainer: Any) -> bool:
    """Whether ``trainer`` runs a shortened fit (``fast_dev_run`` or ``limit_train_batches``),
    in which a schedule shortens too rather than refusing the run."""
    limit = getattr(trainer, "limit_train_batches", 1.0)
    return bool(getattr(trainer, "fast_dev_run", False)) or limit != 1.0


def config_from(value: Any, default: Any) -> Any:
    """``value`` (``None``, a config, a dict of some of its keys, or a name alone, as in
    ``optimizer: sgd``) over ``default``'s values."""
    if value is None:
        return default
    if isinstance(value, type(default)):
        return value
    if isinstance(value, str):
        return dataclasses.replace(default, name=value)
    if not isinstance(value, Mapping):
        raise SpecError(f"expected a mapping of {type(default).__name__} keys, got {value!r}")
    fields = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(value) - fields)
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown key", hint="allowed keys: " + ", ".join(fields))
    return dataclasses.replace(default, **value)


#: the flat keys of earlier releases, by the sub-config that holds them now
FLAT_KEYS = {
    "optimizer": ("lr", "momentum", "nesterov", "weight_decay"),
    "scheduler": ("warmup_epochs", "step_size", "gamma"),
}


def upgrade_flat_keys(
    args: Mapping[str, Any], path: str = "task.args", own: Collection[str] = ()
) -> dict[str, Any]:
    """``args`` with the flat optimizer/schedule keys of earlier releases moved into the
    ``optimizer`` and ``scheduler`` sub-configs, with one deprecation line per moved key. Keys in
    ``own`` are the task's own arguments (an RL task's ``gamma`` is its discount) and stay."""
    args = dict(args)
    nested: dict[str, dict[str, Any]] = {}
    for group, keys in FLAT_KEYS.items():
        flat = [k for k in keys if k in args and k not in own]
        if flat and isinstance(args.get(group), str):  # optimizer: sgd + lr: 0.1
            nested[group] = {"name": args.pop(group)}
        for key in flat:
            nested.setdefault(group, {})[key] = args.pop(key)
            deprecated(f"{path}.{key}: moved to {path}.{group}.{key}")
    for group, values in nested.items():
        existing = args.get(group) if isinstance(args.get(group), Mapping) else {}
        twice = sorted(set(values) & set(existing))
        if twice:
            raise SpecError(
                f"{path}.{twice[0]}: also set as {path}.{group}.{twice[0]}",
                hint=f"keep {path}.{group}.{twice[0]} alone",
            )
        args[group] = {**values, **existing}
    return args


def check_optimizer_args(
    name: str, lr: float, momentum: float | None, nesterov: bool, weight_decay: float
) -> None:
    """Raise SpecError naming the key of the first bad value or combination."""
    if name not in DEFAULT_MOMENTUM and name != "adagrad":
        raise SpecError(
            f"{KEY}name: unknown optimizer {name!r}",
            hint="one of sgd, adagrad, rmsprop, adam, adamw",
        )
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


def build_optimizer(
    param_groups: Iterable[Any],
    name: OptimizerName,
    lr: float,
    momentum: float | None = None,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The optimizer over ``param_groups`` (parameters, or dicts with ``params`` and an ``lr``)."""
    check_optimizer_args(name, lr, momentum, nesterov, weight_decay)
    momentum = _momentum(name, momentum)
    if name == "sgd":
        return torch.optim.SGD(
            param_groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
    if name == "adagrad":
        return torch.optim.Adagrad(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(
            param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    adam = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return adam(param_groups, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


def check_scheduler_args(name: str, warmup_epochs: int, step_size: int, gamma: float) -> None:
    """Raise SpecError naming the key of the first bad value (max_epochs is checked at build)."""
    if name not in ("none", "step", "cosine"):
        raise SpecError(
            f"{SCHEDULE_KEY}name: unknown schedule {name!r}", hint="one of none, step, cosine"
        )
    if warmup_epochs < 0:
        raise SpecError(f"{SCHEDULE_KEY}warmup_epochs: must be >= 0, got {warmup_epochs}")
    if name == "step" and step_size < 1:
        raise SpecError(f"{SCHEDULE_KEY}step_size: must be >= 1, got {step_size}")
    if name == "step" and not 0 < gamma <= 1:
        raise SpecError(f"{SCHEDULE_KEY}gamma: must be in (0, 1], got {gamma}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: SchedulerName,
    max_epochs: float | None,
    warmup_epochs: int = 0,
    step_size: int = 30,
    gamma: float = 0.1,
    steps_per_epoch: int | None = None,
) -> dict[str, Any] | None:
    """Lightning's lr_scheduler config (``{"scheduler", "interval", "frequency"}``), or ``None``
    when there is nothing to schedule (``none`` without warmup). ``max_epochs`` is the training
    length, fractional when ``max_steps`` ends training inside an epoch."""
    check_scheduler_args(name, warmup_epochs, step_size, gamma)
    finite = max_epochs is not None and max_epochs > 0
    if name == "cosine" and not finite:
        raise SpecError(
            f"trainer.max_epochs: the cosine schedule needs a finite max_epochs "
            f"(or max_steps), got {max_epochs}"
        )
    if name == "cosine" and warmup_epochs >= max_epochs:
        raise SpecError(
            f"{SCHEDULE_KEY}warmup_epochs: {warmup_epochs} must be less than the "
            f"{max_epochs:g} training epochs for the cosine schedule"
        )
    if name == "none" and warmup_epochs == 0:
        return None
    per_step = steps_per_epoch is not None
    factor = lr_factor(name, max_epochs or 0, warmup_epochs, step_size, gamma, steps_per_epoch or 1)
    return {
        "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor),
        "interval": "step" if per_step else "epoch",
        "frequency": 1,
    }


def lr_factor(
    name: SchedulerName,
    max_epochs: float,
    warmup_epochs: int,
    step_size: int,
    gamma: float,
    steps_per_epoch: int = 1,
) -> Callable[[int], float]:
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
