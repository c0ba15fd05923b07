"""Running the numba kernels on several threads: each takes a contiguous range of items.

The kernels release the GIL (``nogil=True``) and write disjoint parts of preallocated arrays, so
threads need no locks, share every input without copying it (memory stays that of one run),
and give results independent of how the work was split.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_WORK_PER_THREAD = 20_000  # below this much work a thread costs more than it saves


def available_workers() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_chunks(kernel: Callable, cost: np.ndarray, workers: int, *args) -> None:
    """Run ``kernel(start, stop, *args)`` over contiguous ranges of items covering ``cost`` [N]
    (work per item), on up to ``workers`` threads; the kernels release the GIL."""
    total = float(cost.sum())
    chunks = int(min(4 * workers, max(1, total // MIN_WORK_PER_THREAD)))
    if workers <= 1 or chunks <= 1:
        kernel(0, len(cost), *args)
        return
    cumulative = np.cumsum(cost, dtype=np.float64)
    bounds = np.searchsorted(cumulative, np.linspace(0, total, chunks + 1)[1:-1], side="right")
    bounds = np.unique(np.concatenate([[0], bounds, [len(cost)]]))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda b: kernel(b[0], b[1], *args), zip(bounds[:-1], bounds[1:])))
