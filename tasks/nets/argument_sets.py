"""Argument sets: keyword arguments that several net builders share, declared once.

An argument set is a frozen dataclass: its fields are the arguments with their types and
defaults, its ``__post_init__`` their checks. A builder takes it as one parameter, and
:func:`flat_argument_sets` makes the set's fields the builder's own flat keyword arguments::

    @dataclass(frozen=True)
    class PointNetBackbone:
        in_channels: int = 3
        width: int = 64

    @POINTCLOUD_NETS.register("pointnet")
    @flat_argument_sets
    def pointnet(*, num_classes: int, backbone: PointNetBackbone, dropout: float = 0.3): ...

    pointnet(num_classes=4, width=8)  # backbone=PointNetBackbone(width=8)

So the classifier and the segmentation net of one backbone take the same ``net_args`` from one
source, and the spec checker (unknown keys with did-you-mean, types, missing keys) sees the flat
keys. (A ``config_type`` parameter of a task or datamodule, ``optimizer: OptimizerConfig``, is
the other way round: a nested mapping in the spec.)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

Builder = TypeVar("Builder", bound=Callable[..., Any])


def flat_argument_sets(builder: Builder) -> Builder:
    """``builder`` taking the fields of each keyword parameter annotated with a dataclass (an
    argument set) as flat keyword arguments, in the parameter's place: its ``__signature__``
    (which the spec checker reads) lists them with their types and defaults, and a call builds
    the set from them (a TypeError names an unknown or missing argument, as a plain call's)."""
    signature = inspect.signature(builder, eval_str=True)
    sets = {
        p.name: p.annotation
        for p in signature.parameters.values()
        if dataclasses.is_dataclass(p.annotation) and isinstance(p.annotation, type)
    }
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name in sets:
            parameters += _field_parameters(sets[parameter.name])
        else:
            parameters.append(parameter)
    flat = signature.replace(parameters=parameters)

    @functools.wraps(builder, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
    def build(*args: Any, **kwargs: Any) -> Any:
        arguments = flat.bind(*args, **kwargs).arguments
        for name, argument_set in sets.items():
            fields = [f.name for f in dataclasses.fields(argument_set)]
            values = {key: arguments.pop(key) for key in fields if key in arguments}
            arguments[name] = argument_set(**values)
        return builder(**arguments)

    build.__signature__ = flat  # type: ignore[attr-defined]
    return typing.cast(Builder, build)


def _field_parameters(argument_set: type) -> list[inspect.Parameter]:
    """The fields of ``argument_set`` as keyword-only parameters, annotations resolved (a field
    without a default is a required argument)."""
    hints = typing.get_type_hints(argument_set)
    return [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty
            if field.default is dataclasses.MISSING
            else field.default,
            annotation=hints[field.name],
        )
        for field in dataclasses.fields(argument_set)
    ]
