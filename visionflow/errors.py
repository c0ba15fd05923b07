"""One exception hierarchy for everything a user can get wrong.

The CLI prints ``str(error)`` (the message and, on a second line, the hint) and exits with
``error.exit_code``: 2 for bad input (spec, data, names), 1 for a run that failed on its own.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

#: a message that starts with a key path (``lr: ...``, ``net_args.depth: ...``, ``stages[0]: ...``)
_KEY_PATH = re.compile(r"^[A-Za-z_][\w.\[\]]*:")


class VisionFlowError(Exception):
    """Base class: a message that names the file, key or value at fault, and a hint with the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"

    def under(self, prefix: str) -> VisionFlowError:
        """The same error with its key path placed under ``prefix``: library code names the
        argument (``lr: must be > 0``), the pipeline adds where it sits in the spec
        (``task.args.optimizer.lr: must be > 0``)."""
        joiner = "." if _KEY_PATH.match(self.message) else ": "
        error = type(self)(f"{prefix}{joiner}{self.message}", self.hint)
        error.__dict__.update(
            {k: v for k, v in self.__dict__.items() if k not in ("message", "hint")}
        )
        return error


class SpecError(VisionFlowError):
    """A pipeline spec is malformed: unknown key, wrong type, bad value, or incompatible parts."""


class UnknownNameError(SpecError):
    """A registry lookup failed (task, datamodule, network, transform preset, stage)."""


class DataError(VisionFlowError):
    """A dataset file is missing, unreadable or malformed; the message names the file and record."""


class CheckpointError(VisionFlowError):
    """A checkpoint or run directory cannot be read or resumed."""


class RunError(VisionFlowError):
    """A run failed for a reason other than its input (e.g. a worker crashed)."""

    exit_code = 1


class VisionFlowDeprecation(FutureWarning):
    """A spec key or argument that still works but will go; the CLI prints it as one line."""


def check_minimums(minimums: dict[str, tuple[float, float]]) -> None:
    """SpecError naming the first argument below its least value: ``{name: (value, least)}``."""
    for name, (value, least) in minimums.items():
        if value < least:
            raise SpecError(f"{name}: must be >= {least}, got {value}")


def not_utf8(error: UnicodeDecodeError) -> str:
    """What is wrong with a file that ``error`` could not decode: ``not UTF-8 text (byte 0xff at
    offset 6)``, for a message that names the file."""
    return f"not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start})"


@contextlib.contextmanager
def writing_to(option: str, path: str | Path) -> Iterator[None]:
    """Run a block that writes the output ``path`` given as ``option``; an OSError in it becomes
    a SpecError naming both: ``--json out.json: cannot write there (Is a directory)``."""
    try:
        yield
    except OSError as error:
        raise SpecError(
            f"{option} {path}: cannot write there ({error.strerror or error})",
            hint=f"give {option} a writable path",
        ) from None


def deprecated(message: str) -> None:
    """Warn (once per message) that ``message`` names something deprecated; shown as one line,
    ``visionflow: deprecated: <message>``."""
    warnings.warn(message, VisionFlowDeprecation, stacklevel=3)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, VisionFlowDeprecation):
        return f"visionflow: deprecated: {message}\n"
    return _plain_format_warning(message, category, filename, lineno, line)


_plain_format_warning = warnings.formatwarning
warnings.formatwarning = _format_warning
