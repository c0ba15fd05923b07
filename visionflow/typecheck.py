"""Check plain YAML values against type annotations, for spec validation.

Only the shapes a spec can hold are understood: ``int``, ``float`` (ints accepted), ``str``,
``bool``, ``None``, ``Literal``, ``Union``/``Optional``, ``list``/``tuple``/``Sequence`` and
``dict``/``Mapping`` with their parameters. Anything else is accepted as is.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any


def describe(value: Any) -> str:
    """``"a str ('abc')"``-style description of a value for error messages."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    article = "an" if type(value).__name__[0] in "aeiou" else "a"
    return f"{article} {type(value).__name__} ({text})"


def _name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def check_value(value: Any, annotation: Any) -> str | None:
    """Return ``None`` when ``value`` fits ``annotation``, else a message such as
    ``"expected int, got a str ('ten')"``."""
    if _fits(value, annotation):
        return None
    return f"expected {_name(annotation)}, got {describe(value)}"


def _fits(value: Any, annotation: Any) -> bool:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if annotation is type(None) or annotation is None:
        return value is None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    container = origin or annotation
    if container in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if container in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(_fits(v, args[1]) for v in value.values())
    return True
