"""One exception hierarchy for everything a user can get wrong.

The CLI prints ``str(error)`` (the message and, on a second line, the hint) and exits with
``error.exit_code``: 2 for bad input (spec, data, names), 1 for a run that failed on its own.
"""

from __future__ import annotations


class VisionFlowError(Exception):
    """Base class: a message that names the file, key or value at fault, and a hint with the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


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
