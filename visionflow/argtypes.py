"""argparse ``type`` functions shared by the commands of every layer (the CLI's own and the
evaluation layer's ``eval coco`` arguments): light to import, as they load on every command."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_in(least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an int from ``least`` to ``most`` (no upper end where None); any
    other value is refused as ``argument --port: must be 1..65535, got 99999`` (exit code 2)."""

    def checked(text: str) -> int:
        value = int(text)
        if value < least or (most is not None and value > most):
            bounds = f">= {least}" if most is None else f"{least}..{most}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    checked.__name__ = "int"  # not a number: argparse's "invalid int value: 'abc'"
    return checked
