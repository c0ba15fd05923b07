"""Reading spec YAML and setting keys by path: ``--set a.b.c=value`` and sweep trial values.

YAML is read with :class:`SpecLoader`, a ``yaml.SafeLoader`` (no Python objects are ever built
from a spec) that also reads ``1e-4`` as a float.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from visionflow.errors import SpecError
from visionflow.typecheck import describe


class SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` as a float (YAML 1.2; PyYAML's 1.1 rules
    want ``1.0e-4`` and would hand the spec the string ``'1e-4'``)."""


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str) -> Any:
    """Parse YAML text safely (no Python objects), with YAML 1.2 floats."""
    return yaml.load(text, Loader=SpecLoader)


def add_set_argument(parser: argparse.ArgumentParser, example: str = "") -> None:
    """The repeatable ``--set KEY=VALUE`` option, collected in ``args.overrides`` for
    :func:`apply_overrides`, as every command that reads a spec takes it; ``example`` goes into
    the help (``", e.g. --set data.args.batch_size=32"``)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a spec key{example} (repeatable)",
    )


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` set (the value parsed as YAML)."""
    values = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(
                f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set trainer.max_epochs=3"
            )
        try:
            values[item] = (key.strip(), read_yaml(text) if text.strip() else None)
        except yaml.YAMLError:
            values[item] = (key.strip(), text)
    result = _deep_copy(raw)
    for item, (key, value) in values.items():
        _set_path(result, key.split("."), value, item)
    return result


def with_values(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each key path of ``values`` set to its (already typed) value."""
    result = _deep_copy(raw)
    for path, value in values.items():
        _set_path(result, path.split("."), value, f"{path}={value!r}")
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _set_path(root: dict[str, Any], parts: list[str], value: Any, item: str) -> None:
    node: Any = root
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(
                    f"--set {item!r}: {'.'.join(parts[: depth + 1])}: "
                    f"index out of range (list of {len(node)})"
                )
            index: Any = int(part)
        else:
            index = part
        if last:
            node[index] = value
            continue
        if isinstance(node, dict) and node.get(index) is None:
            node[index] = {}
        child = node[index]
        if not isinstance(child, (dict, list)):
            raise SpecError(
                f"--set {item!r}: {'.'.join(parts[: depth + 1])} is "
                f"{describe(child)}, not a mapping"
            )
        node = child
