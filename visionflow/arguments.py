"""Check a builder's keyword arguments against its signature, and trainer keys against
``lightning.pytorch.Trainer``: unknown names with a suggestion, missing required ones, and the
annotated types (``visionflow.typecheck``)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from typing import Any

from visionflow.errors import SpecError
from visionflow.registry import did_you_mean
from visionflow.typecheck import check_value

DATA_PROVIDED = ("num_classes", "in_channels", "image_size", "class_names", "category_ids")


def check_arguments(builder: Any, args: Mapping[str, Any], path: str, *,
                    provided_by_data: bool = False, skip: int = 0) -> None:
    """Check ``args`` against the keyword parameters of ``builder`` (a class or function):
    unknown names (with a suggestion), missing required ones and annotated types.
    ``skip`` leading positional parameters are filled by the caller (e.g. a stage's context)."""
    target = builder.__init__ if inspect.isclass(builder) else builder
    signature = inspect.signature(target)
    params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")][skip:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    named = {p.name: p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    for key, value in args.items():
        if key not in named:
            raise SpecError(f"{path}.{key}: unknown key{did_you_mean(str(key), list(named))}",
                            hint="allowed keys: " + ", ".join(named))
        annotation = _annotation(target, key)
        problem = check_value(value, annotation) if annotation is not None else None
        if problem:
            raise SpecError(f"{path}.{key}: {problem}")
    for name, param in named.items():
        required = param.default is inspect.Parameter.empty
        if required and name not in args and not (provided_by_data and name in DATA_PROVIDED):
            raise SpecError(f"{path}.{name}: required key is missing")


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
