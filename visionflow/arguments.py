"""Check a builder's keyword arguments against its signature, and the ``trainer:`` section
against ``lightning.pytorch.Trainer``'s: unknown names with a suggestion, missing required ones,
the annotated types (``visionflow.typecheck``) and, for the trainer, the ranges Lightning itself
would refuse only once the fit has started."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

from visionflow.errors import SpecError
from visionflow.registry import did_you_mean
from visionflow.typecheck import check_value, describe


def check_arguments(
    builder: Any,
    args: Mapping[str, Any],
    path: str,
    *,
    provided: Collection[str] = (),
    skip: int = 0,
) -> None:
    """Check ``args`` against the keyword parameters of ``builder`` (a class, function or config
    dataclass): unknown names (with a suggestion), missing required ones (except those in
    ``provided``, which the caller fills in) and annotated types. An argument annotated with a
    config dataclass (``optimizer: OptimizerConfig``) takes a mapping of some of its fields,
    checked the same way under ``path.<argument>``. ``skip`` leading positional parameters are
    filled by the caller (e.g. a stage's context)."""
    params = parameters_of(builder, skip)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    named = {p.name: p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    for key, value in args.items():
        if key not in named:
            raise SpecError(
                f"{path}.{key}: unknown key{did_you_mean(str(key), list(named))}",
                hint="allowed keys: " + ", ".join(named),
            )
        _check_value(value, _resolved(named[key].annotation), f"{path}.{key}")
    for name, param in named.items():
        required = param.default is inspect.Parameter.empty
        if required and name not in args and name not in provided:
            raise SpecError(f"{path}.{name}: required key is missing")


def parameters_of(builder: Any, skip: int = 0) -> list[inspect.Parameter]:
    """The parameters of ``builder`` (a class's constructor, or a function) without ``self``,
    after ``skip`` leading ones: the one walk of a builder's signature that the spec checker, the
    resolved spec and the pipeline's builders share. Annotations are resolved where they can be.

    A constructor's ``**kwargs`` stands for the keyword parameters of the next constructor up the
    class's MRO that it does not name itself (followed as far as they forward ``**kwargs``); that
    constructor's positional-only parameters are the subclass's to fill, not the spec's. So
    ``def __init__(self, root, batch_size=128, **loader)`` over a base's
    ``def __init__(self, context, /, *, batch_size, num_workers=0)`` takes ``root``,
    ``batch_size`` (default 128) and ``num_workers``."""
    if not inspect.isclass(builder):
        return _signature(builder)[skip:]
    params: list[inspect.Parameter] = []
    forwards: list[inspect.Parameter] = []
    owners = [c for c in builder.__mro__[:-1] if "__init__" in vars(c)]  # not object's
    for depth, owner in enumerate(owners):
        own = _signature(owner.__init__)
        if depth:  # reached through **kwargs: the keyword parameters not named below
            named = {p.name for p in params}
            own = [p for p in own if p.kind not in _POSITIONAL and p.name not in named]
        params += [p for p in own if p.kind is not p.VAR_KEYWORD]
        forwards = [p for p in own if p.kind is p.VAR_KEYWORD]
        if not forwards:
            break
    return (params + forwards)[skip:]


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)


def _signature(target: Any) -> list[inspect.Parameter]:
    """``target``'s parameters without ``self``/``cls``, annotations evaluated where possible."""
    try:
        signature = inspect.signature(target, eval_str=True)
    except Exception:  # unresolvable forward references: keep the names, skip the type checks
        signature = inspect.signature(target)
    return [p for p in signature.parameters.values() if p.name not in ("self", "cls")]


def _resolved(annotation: Any) -> Any:
    """An evaluated annotation, or None where there is none to check against."""
    return (
        None if annotation is inspect.Parameter.empty or isinstance(annotation, str) else annotation
    )


def config_type(annotation: Any) -> type | None:
    """The config dataclass that ``annotation`` names (alone or in an Optional), else None."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) else (annotation,)
    found = [a for a in options if dataclasses.is_dataclass(a) and isinstance(a, type)]
    return found[0] if found else None


def _check_value(value: Any, annotation: Any, path: str) -> None:
    config = config_type(annotation) if annotation is not None else None
    if config is not None and isinstance(value, Mapping):
        check_arguments(config, value, path, provided={f.name for f in dataclasses.fields(config)})
        return
    if config is not None and isinstance(value, str):  # a name alone: optimizer: sgd
        _check_value(value, _annotation(config.__init__, "name"), f"{path}.name")
        return
    if config is not None and value is not None and not isinstance(value, config):
        keys = ", ".join(f.name for f in dataclasses.fields(config))
        raise SpecError(
            f"{path}: expected a mapping of {config.__name__} keys, got {describe(value)}",
            hint=f"keys: {keys}",
        )
    problem = check_value(value, annotation) if annotation is not None else None
    if problem:
        raise SpecError(f"{path}: {problem}")


def _annotation(target: Any, name: str) -> Any:
    try:
        return typing.get_type_hints(target).get(name)
    except Exception:  # unresolvable forward references: skip the type check, keep the name check
        return None


#: Trainer keys the run directory and the resources section set.
MANAGED_TRAINER_KEYS = (
    "logger",
    "callbacks",
    "default_root_dir",
    "enable_checkpointing",
    "strategy",
    "plugins",
)
#: The smallest value Lightning accepts for each count (``-1``: unlimited).
TRAINER_MINIMUMS = {
    "max_epochs": -1,
    "min_epochs": 0,
    "max_steps": -1,
    "min_steps": 0,
    "num_nodes": 1,
    "num_sanity_val_steps": -1,
    "log_every_n_steps": 1,
    "check_val_every_n_epoch": 1,
    "accumulate_grad_batches": 1,
    "reload_dataloaders_every_n_epochs": 0,
    "fast_dev_run": 0,
    "gradient_clip_val": 0,
}
#: Keys that take a count of batches (an int >= 0) or a fraction of them (a float in [0, 1]).
TRAINER_FRACTIONS = (
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "overfit_batches",
    "val_check_interval",
)
#: YAML values a trainer annotation can hold; its other members (an ``Accelerator`` instance,
#: a ``timedelta``) no spec can give.
PLAIN_TYPES = (int, float, str, bool, type(None), list, tuple, dict)


def check_trainer_keys(trainer: Mapping[str, Any]) -> None:
    """Check the ``trainer:`` section: known ``Trainer`` arguments, not ones VisionFlow sets,
    of the annotated type and in the range Lightning accepts; SpecError naming the key."""
    from lightning.pytorch import Trainer

    params = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    for key, value in trainer.items():
        if key in MANAGED_TRAINER_KEYS:
            raise SpecError(
                f"trainer.{key}: set by VisionFlow, not by the spec",
                hint="the run directory holds logs and checkpoints; use resources "
                "for workers and devices",
            )
        if key not in params:
            raise SpecError(
                f"trainer.{key}: unknown key{did_you_mean(str(key), params)}",
                hint="trainer keys are lightning.pytorch.Trainer's arguments",
            )
        annotation = _annotation(Trainer.__init__, key)
        problem = check_value(value, _plain(annotation)) if annotation is not None else None
        if problem or (problem := _trainer_range_problem(key, value)):
            raise SpecError(
                f"trainer.{key}: {problem}",
                hint="see lightning.pytorch.Trainer's documentation of this argument",
            )


def _plain(annotation: Any) -> Any:
    """``annotation`` without the union members that no YAML value can be."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    members = [
        a
        for a in typing.get_args(annotation)
        if (typing.get_origin(a) or a) in PLAIN_TYPES or typing.get_origin(a) is typing.Literal
    ]
    return typing.Union[tuple(members)] if members else annotation  # noqa: UP007  (built at run time)


def _trainer_range_problem(key: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if key in TRAINER_MINIMUMS and value < TRAINER_MINIMUMS[key]:
        return f"must be >= {TRAINER_MINIMUMS[key]}, got {describe(value)}"
    if key in TRAINER_FRACTIONS and (value < 0 or (isinstance(value, float) and value > 1)):
        return f"must be a count of batches (an int >= 0) or a fraction in [0, 1], got {describe(value)}"
    return None
