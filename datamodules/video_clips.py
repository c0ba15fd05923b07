"""Which frames a clip reads: ``clip_length`` frames T, ``stride`` s apart.

Training draws one clip per video at a random start; evaluation reads ``num_clips`` clips per
video at evenly spaced starts (first clip at frame 0, last ending at the last frame), so the
video's score averages over its whole length.

A video shorter than a clip's span ``(T - 1) * s + 1`` is padded, by ``padding``:

- ``loop``: the frame indices wrap around to frame 0 (0, 1, 2, 0, 1, ... for 3 frames), so the
  motion continues, with a jump at the wrap;
- ``repeat``: the last frame is repeated (0, 1, 2, 2, 2, ...), so the clip ends still.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from visionflow.errors import SpecError

Padding = Literal["loop", "repeat"]
PADDINGS = ("loop", "repeat")


def check_clip_arguments(clip_length: int, stride: int, num_clips: int, padding: str) -> None:
    """SpecError naming the first bad clip argument."""
    problems = [
        (clip_length < 1, f"clip_length: must be >= 1, got {clip_length}"),
        (stride < 1, f"stride: must be >= 1, got {stride}"),
        (num_clips < 1, f"num_clips: must be >= 1, got {num_clips}"),
        (
            padding not in PADDINGS,
            f"padding: must be one of {', '.join(PADDINGS)}, got {padding!r}",
        ),
    ]
    for failed, message in problems:
        if failed:
            raise SpecError(message)


def clip_span(clip_length: int, stride: int) -> int:
    """Frames from a clip's first to its last frame, both included."""
    return (clip_length - 1) * stride + 1


def clip_frame_indices(
    num_frames: int, clip_length: int, stride: int, start: int, padding: Padding = "loop"
) -> np.ndarray:
    """int64 ``[T]`` frame indices of the clip starting at ``start``, inside ``[0, num_frames)``."""
    indices = start + stride * np.arange(clip_length, dtype=np.int64)
    if padding == "loop":
        return indices % num_frames
    return np.minimum(indices, num_frames - 1)


def random_clip_start(num_frames: int, span: int, rng: np.random.Generator) -> int:
    """A start drawn uniformly among those whose clip fits (0 when none does)."""
    return int(rng.integers(0, max(num_frames - span, 0) + 1))


def uniform_clip_starts(num_frames: int, span: int, num_clips: int) -> list[int]:
    """``num_clips`` evenly spaced starts from 0 to the last start whose clip fits."""
    last = max(num_frames - span, 0)
    return [int(s) for s in np.linspace(0, last, num_clips).round()]
