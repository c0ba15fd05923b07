"""The process's global random states as a checkpoint entry that loads with ``weights_only=True``.

A fit draws from them as it trains (a GAN's noise, a VAE's samples, dropout, points sampled from
a mesh); Lightning's checkpoints do not keep them, so a fit resumed from one drew other numbers
than the uninterrupted fit would have. :class:`visionflow.tasks.base.VisionTask` saves them with
every checkpoint and restores them when a fit resumes from one.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def random_states() -> dict[str, Any]:
    """Python's, NumPy's, torch's and (once CUDA is in use) the current CUDA device's random
    states: tensors, ints, floats and tuples of them."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": (
            name,
            torch.from_numpy(keys.astype(np.int64)),
            position,
            has_gauss,
            cached_gaussian,
        ),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_random_states(states: dict[str, Any]) -> None:
    """Continue from ``states`` (:func:`random_states`); the CUDA state only where CUDA is."""
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])
