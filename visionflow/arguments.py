"""Check a builder's keyword arguments against its signature, and trainer keys against
``lightning.pytorch.Trainer``: unknown names with a suggestion, missing required ones, and the
annotated types (``visionflow.typecheck``)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Collection, Mapping
from typing import Any

from visionflow.errors import SpecError
from visionflow.registry import did_you_mean
from visionflow.typecheck import check_value, describe


def check_arguments(builder: Any, args: Mapping[str, Any], path: str, *,
                    provided: Collection[str] = (), skip: int = 0) -> None:
    """Check ``args`` against the keyword parameters of ``builder`` (a class, function or config
    dataclass): unknown names (with a suggestion), missing required ones (except those in
    ``provided``, which the caller fills in) and annotated types. An argument annotated with a
    config dataclass (``optimizer: OptimizerConfig``) takes a mapping of some of its fields,
    checked the same way under ``path.<argument>``. ``skip`` leading positional parameters are
    filled by the caller (e.g. a stage's context)."""
    target = builder.__init__ if inspect.isclass(builder) else builder
    params = parameters_of(builder, skip)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    named = {p.name: p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    for key, value in args.items():
        if key not in named:
            raise SpecError(f"{path}.{key}: unknown key{did_you_mean(str(key), list(named))}",
                            hint="allowed keys: " + ", ".join(named))
        _check_value(value, _annotation(target, key), f"{path}.{key}")
    for name, param in named.items():
        required = param.default is inspect.Parameter.empty
        if required and name not in args and name not in provided:
            raise SpecError(f"{path}.{name}: required key is missing")


def parameters_of(builder: Any, skip: int = 0) -> list[inspect.Parameter]:
    """The parameters of ``builder`` (a class's constructor, or a function) without ``self``,
    after ``skip`` leading ones: the one walk of a builder's signature that the spec checker, the
    resolved spec and the pipeline's builders share."""
    target = builder.__init__ if inspect.isclass(builder) else builder
    params = inspect.signature(target).parameters.values()
    return [p for p in params if p.name not in ("self", "cls")][skip:]


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
        raise SpecError(f"{path}: expected a mapping of {config.__name__} keys, got "
                        f"{describe(value)}", hint=f"keys: {keys}")
    problem = check_value(value, annotation) if annotation is not None else None
    if problem:
        raise SpecError(f"{path}: {problem}")


def _annotation(target: Any, name: str) -> Any:
    try:
        return typing.get_type_hints(target).get(name)
    except Exception:  # unresolvable forward references: skip the type check, keep the name check
        return None


def check_trainer_keys(trainer: Mapping[str, Any]) -> None:
    from lightning.pytorch import Trainer

    managed = {"logger", "callbacks", "default_root_dir", "enable_checkpointing", "strategy",
               "plugins"}
    params = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    for key in trainer:
        if key in managed:
            raise SpecError(f"trainer.{key}: set by VisionFlow, not by the spec",
                            hint="the run directory holds logs and checkpoints; use resources "
                                 "for workers and devices")
        if key not in params:
            raise SpecError(f"trainer.{key}: unknown key{did_you_mean(str(key), params)}",
                            hint="trainer keys are lightning.pytorch.Trainer's arguments")
