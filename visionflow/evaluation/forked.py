"""Work split over forked processes that write into memory shared with this one: parallel decoding.

    arrays = shared_empty([(n, np.int64), ((n, 7), np.float64)])   # visible to forked children
    with Forked(fill_span, spans[1:]) as children:   # each in a child, started now
        counts = [fill_span(spans[0]), *children.results()]   # the first here, meanwhile

Each child is forked from this process, shares the imported modules, whatever this process has
read (a memory-mapped file) and the arrays made by :func:`shared_empty`, starts in about a
millisecond, writes its results into those arrays and sends back one number. Python cannot
decode JSON on two cores from two threads (the decoder holds the GIL); processes can, and this
way no result is copied between them.

Fork only where this process runs no threads that the children could need: the command line's
``visionflow eval coco`` asks for it (:func:`visionflow.evaluation.coco.evaluate_coco`'s
``processes``); a training process, with its data-loader threads and its CUDA context, keeps
the default of one process and never forks here.
"""

from __future__ import annotations

import mmap
import os
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["Forked", "shared_empty", "usable_cores"]

Item = TypeVar("Item")
#: fork without exec is safe for numpy and msgspec on Linux; macOS's system libraries are not
#: fork-safe (Python's multiprocessing spawns there), and Windows has no fork
FORKS = sys.platform.startswith("linux")
_RESULT = struct.Struct("<q")  # what a child's function returned; -1 for None


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def shared_empty(layout: Sequence[tuple[int | tuple[int, ...], type]]) -> list[np.ndarray]:
    """Uninitialized arrays of these (shape, dtype) in one anonymous shared mapping, which
    children forked afterwards write into and this process sees; a page takes memory only once
    it is written."""
    sizes = [int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in layout]
    memory = mmap.mmap(-1, max(sum(sizes), 1))
    arrays, offset = [], 0
    for (shape, dtype), size in zip(layout, sizes):
        arrays.append(np.frombuffer(memory, dtype, int(np.prod(shape)), offset).reshape(shape))
        offset += size
    return arrays


class Forked:
    """Children forked now, each running ``function(item)`` for one of ``items`` while this
    process goes on; :meth:`results` waits for what they return (an int >= 0, or None), in the
    items' order. A child that fails (an exception, a signal) gives None. Items that get no
    child run in :meth:`results`, here and in turn: all of them off Linux (``FORKS``), and
    those after a fork that failed (no memory, the process limit). Leaving the ``with`` block
    kills any child still running (this process was interrupted, or failed before it asked
    for the results)."""

    def __init__(self, function: Callable[[Item], int | None], items: Sequence[Item]):
        self._function, self._children, self._reaped = function, [], 0
        for item in items if FORKS else ():
            try:
                self._children.append(_start(function, item))
            except OSError:
                break
        self._here = items[len(self._children) :]

    def results(self) -> list[int | None]:
        results = []
        for pid, read_end in self._children[self._reaped :]:
            results.append(_result(pid, read_end))
            self._reaped += 1
        return results + [self._function(item) for item in self._here]

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exception: object) -> None:
        for pid, _ in self._children[self._reaped :]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for _, read_end in self._children:
            os.close(read_end)
        self._children = []


def _start(function: Callable[[Item], int | None], item: Item) -> tuple[int, int]:
    """(pid, read end of its pipe) of a child that runs ``function(item)`` and sends the result."""
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            os.close(read_end)
            result = function(item)
            os.write(write_end, _RESULT.pack(-1 if result is None else result))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _result(pid: int, read_end: int) -> int | None:
    """What the child sent (None where it sent None or failed)."""
    sent = os.read(read_end, _RESULT.size)
    _, status = os.waitpid(pid, 0)
    if len(sent) < _RESULT.size or os.waitstatus_to_exitcode(status) != 0:
        return None
    value = _RESULT.unpack(sent)[0]
    return None if value < 0 else value
