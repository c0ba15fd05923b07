"""Optimizers, schedules (warmup, step, cosine) and the errors for bad combinations."""

from __future__ import annotations

import math

import pytest
import torch

from visionflow.errors import SpecError
from visionflow.tasks.optim import build_optimizer, build_scheduler, lr_factor


def params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(2, 2).parameters())


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", torch.optim.SGD),
        ("adagrad", torch.optim.Adagrad),
        ("rmsprop", torch.optim.RMSprop),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
    ],
)
def test_every_optimizer_builds_with_lr_and_weight_decay(name, cls):
    optimizer = build_optimizer(params(), name, lr=0.05, weight_decay=1e-4)
    assert type(optimizer) is cls
    assert optimizer.param_groups[0]["lr"] == 0.05
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4


def test_momentum_defaults_and_meanings():
    assert build_optimizer(params(), "sgd", lr=0.1).param_groups[0]["momentum"] == 0.9
    assert build_optimizer(params(), "rmsprop", lr=0.1).param_groups[0]["momentum"] == 0.0
    sgd = build_optimizer(params(), "sgd", lr=0.1, momentum=0.5, nesterov=True).param_groups[0]
    assert sgd["momentum"] == 0.5 and sgd["nesterov"]
    adamw = build_optimizer(params(), "adamw", lr=0.1, momentum=0.8).param_groups[0]
    assert adamw["betas"] == (0.8, 0.999)


def test_param_groups_keep_their_own_lr():
    groups = [{"params": params(), "lr": 0.01}, {"params": params()}]
    optimizer = build_optimizer(groups, "sgd", lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"name": "sgd", "momentum": 0.0, "nesterov": True}, "optimizer.nesterov: needs momentum"),
        ({"name": "adam", "nesterov": True}, "optimizer.nesterov: only sgd"),
        ({"name": "adagrad", "momentum": 0.9}, "optimizer.momentum: adagrad has no momentum"),
        ({"name": "sgd", "momentum": 1.5}, r"optimizer.momentum: must be in \[0, 1\)"),
        ({"name": "sgd", "lr": 0.0}, "optimizer.lr: must be > 0"),
        ({"name": "adamw", "weight_decay": -1.0}, "optimizer.weight_decay: must be >= 0"),
        ({"name": "lamb"}, "optimizer.name: unknown optimizer 'lamb'"),
    ],
)
def test_bad_optimizer_settings_name_the_key(kwargs, key):
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(SpecError, match=key):
        build_optimizer(params(), **kwargs)


def factors(schedule, steps: int) -> list[float]:
    return [round(schedule(step), 6) for step in range(steps)]


def test_linear_warmup_then_constant():
    assert factors(lr_factor("none", 10, 4, 30, 0.1), 6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_warmup_per_step_reaches_full_lr_at_the_end_of_warmup():
    schedule = lr_factor("none", 10, warmup_epochs=1, step_size=30, gamma=0.1, steps_per_epoch=4)
    assert factors(schedule, 5) == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_step_decay_counts_epochs():
    schedule = lr_factor("step", 10, 0, step_size=2, gamma=0.5, steps_per_epoch=3)
    assert factors(schedule, 9) == [1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5]
    assert schedule(12) == 0.25


def test_cosine_after_warmup_goes_from_one_to_zero():
    schedule = lr_factor("cosine", max_epochs=6, warmup_epochs=2, step_size=1, gamma=1.0)
    assert factors(schedule, 7) == [
        0.5,
        1.0,
        1.0,
        round(0.5 * (1 + math.cos(math.pi / 4)), 6),
        0.5,
        round(0.5 * (1 + math.cos(3 * math.pi / 4)), 6),
        0.0,
    ]


def test_scheduler_config_drives_the_optimizer_lr():
    optimizer = build_optimizer(params(), "sgd", lr=0.2)
    config = build_scheduler(optimizer, "cosine", max_epochs=4, warmup_epochs=2, steps_per_epoch=2)
    assert config["interval"] == "step"
    lrs = []
    for _ in range(6):
        lrs.append(round(optimizer.param_groups[0]["lr"], 6))
        optimizer.step()
        config["scheduler"].step()
    assert lrs == [0.05, 0.1, 0.15, 0.2, 0.2, round(0.1 * (1 + math.cos(math.pi / 4)), 6)]


def test_no_schedule_without_warmup_and_epoch_interval_by_default():
    optimizer = build_optimizer(params(), "sgd", lr=0.2)
    assert build_scheduler(optimizer, "none", max_epochs=3) is None
    assert build_scheduler(optimizer, "step", max_epochs=3)["interval"] == "epoch"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"name": "cosine", "max_epochs": -1}, "trainer.max_epochs: the cosine schedule needs"),
        (
            {"name": "cosine", "max_epochs": 3, "warmup_epochs": 3},
            "scheduler.warmup_epochs: 3 must",
        ),
        ({"name": "step", "max_epochs": 3, "step_size": 0}, "scheduler.step_size: must be >= 1"),
        ({"name": "step", "max_epochs": 3, "gamma": 0.0}, r"scheduler.gamma: must be in \(0, 1\]"),
        (
            {"name": "none", "max_epochs": 3, "warmup_epochs": -1},
            "scheduler.warmup_epochs: must be",
        ),
        ({"name": "linear", "max_epochs": 3}, "scheduler.name: unknown schedule 'linear'"),
    ],
)
def test_bad_schedule_settings_name_the_key(kwargs, key):
    optimizer = build_optimizer(params(), "sgd", lr=0.1)
    with pytest.raises(SpecError, match=key):
        build_scheduler(optimizer, **kwargs)
