"""Dense optical flow of a video, computed once and cached on disk, and stacked per clip.

Flow field ``i`` ``[H, W, 2]`` (x, y in pixels) moves frame ``i`` onto frame ``i + 1``; a video
of N frames has N - 1 fields. They are computed with OpenCV's Farneback method (TV-L1 needs
opencv-contrib's ``cv2.optflow``, which the project's opencv-python-headless lacks) and saved
as float16 ``.npy`` files, one per video, under a cache folder that mirrors the data root
(``<cache>/<class>/<video>.flow.npy``); the loader memory-maps them and reads only the fields
a clip needs. ``visionflow data precompute-flow ROOT`` fills the cache before training;
otherwise a missing file is computed (and saved) the first time a clip needs it. A cached file
older than its video (one rewritten since, e.g. a regenerated synthetic dataset) is computed
anew.

A clip's flow input stacks L consecutive fields from its first frame: ``[2L, H, W]``, channels
``x_0, y_0, x_1, y_1, ...``. Disk cost: 4 bytes per pixel per frame pair
(e.g. 340x256 at 280 frames: 97 MB).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np

from visionflow.datamodules.video_decode import read_all_frames
from visionflow.rundir import atomic_write_arrays

FLOW_SUFFIX = ".flow.npy"
#: cv2.calcOpticalFlowFarneback's parameters (those of OpenCV's own sample)
FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}


def farneback_flow(frames: np.ndarray) -> np.ndarray:
    """float16 ``[N - 1, H, W, 2]`` flow between consecutive frames of uint8 RGB ``[N, H, W, 3]``."""
    import cv2

    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    fields = [
        cv2.calcOpticalFlowFarneback(before, after, None, **FARNEBACK)
        for before, after in pairwise(gray)
    ]
    height, width = frames.shape[1:3]
    if not fields:
        return np.zeros((0, height, width, 2), dtype=np.float16)
    return np.stack(fields).astype(np.float16)


def flow_cache_path(video: Path, root: Path, cache_dir: Path) -> Path:
    """Where the flow of ``video`` (a file or frame folder under ``root``) is cached."""
    relative = Path(video).resolve().relative_to(Path(root).resolve())
    return Path(cache_dir) / relative.parent / (relative.name + FLOW_SUFFIX)


def cached_flow(video: Path, root: Path, cache_dir: Path) -> np.ndarray:
    """The video's flow fields ``[N - 1, H, W, 2]`` (memory-mapped), computed and saved first
    when the cache lacks them."""
    path = flow_cache_path(video, root, cache_dir)
    if not is_current(path, video):
        atomic_write_arrays(path, farneback_flow(read_all_frames(video)))
    return np.load(path, mmap_mode="r")


def is_current(path: Path, video: Path) -> bool:
    """Whether the flow file ``path`` exists and was written after ``video`` (a file, or a
    frame folder: frames added or removed since count, a frame rewritten in place does not)."""
    try:
        return path.stat().st_mtime_ns >= Path(video).stat().st_mtime_ns
    except FileNotFoundError:
        return False


def stack_flow(flow: np.ndarray, start: int, flow_frames: int) -> np.ndarray:
    """float32 ``[H, W, 2L]``: fields ``start .. start + L - 1`` (the last one repeated past the
    end of the video), channels x_0, y_0, x_1, y_1, ...; zeros for a one-frame video."""
    count, height, width = flow.shape[:3]
    if count == 0:
        return np.zeros((height, width, 2 * flow_frames), dtype=np.float32)
    indices = np.minimum(start + np.arange(flow_frames), count - 1)
    fields = np.asarray(flow[indices], dtype=np.float32)  # [L, H, W, 2]
    return fields.transpose(1, 2, 0, 3).reshape(height, width, 2 * flow_frames)


def precompute_flow(root: Path, cache_dir: Path, videos: list[Path]) -> list[Path]:
    """Compute and cache the flow of ``videos`` under ``root`` that the cache lacks (or holds
    from before the video was rewritten); the new files."""
    written = []
    for video in videos:
        path = flow_cache_path(video, root, cache_dir)
        if not is_current(path, video):
            written.append(atomic_write_arrays(path, farneback_flow(read_all_frames(video))))
    return written
