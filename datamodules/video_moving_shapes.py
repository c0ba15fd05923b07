"""MovingShapes: a seeded synthetic video dataset whose classes differ only in motion.

Each video shows one square or triangle of a random color and size on a noisy gray background,
moving in one of six ways: ``left``, ``right``, ``up``, ``down`` (straight, at a random speed),
``clockwise``, ``counterclockwise`` (rotating in place). Shape, color, size and position are
drawn independently of the class, so a single frame says nothing about it: a single-frame
model stays near chance (1/6) and only a model that sees motion learns the task.

The videos are real H.264 ``.mp4`` files (PyAV, a keyframe every 8 frames), written once by
``prepare_data`` into ``data_dir/{train,val,test}/<class>/<n>.mp4`` (the ``video_folder``
layout, which this datamodule then reads like any other); a ``dataset.json`` records the
arguments, and a folder made with other arguments is rewritten.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from visionflow.batches import VideoBatch
from visionflow.datamodules.base import mix_seed
from visionflow.datamodules.video_clips import Padding
from visionflow.datamodules.video_folder import VideoFolderDataModule
from visionflow.errors import SpecError, check_minimums
from visionflow.registry import DATAMODULES
from visionflow.rundir import atomic_write_json

MOTIONS = ("left", "right", "up", "down", "clockwise", "counterclockwise")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPLIT_SALT = {"train": 0, "val": 1, "test": 2}
FPS = 8


def shape_vertices(kind: str, center: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """int32 ``[N, 2]`` polygon (x, y) of a square or triangle rotated by ``angle`` radians."""
    corners = 4 if kind == "square" else 3
    angles = angle + 2 * math.pi * np.arange(corners) / corners
    points = center + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.round(points).astype(np.int32)


def render_video(motion: str, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB ``[frames, size, size, 3]`` of one shape moving as ``motion`` says."""
    import cv2

    kind = ("square", "triangle")[rng.integers(2)]
    radius = rng.uniform(0.1, 0.16) * size
    color = tuple(int(c) for c in rng.integers(90, 256, size=3))
    angle, spin = rng.uniform(0, 2 * math.pi), rng.uniform(0.15, 0.3)
    step = np.zeros(2)  # pixels per frame (x, y)
    if motion in DIRECTIONS:
        step = np.array(DIRECTIONS[motion]) * rng.uniform(0.7, 1.1) * size / 40
        spin = 0.0
    elif motion == "counterclockwise":
        spin = -spin  # image y points down: +angle is clockwise
    span = frames - 1  # the shape stays inside every frame
    low = radius + 1 + np.maximum(-step, 0) * span
    high = size - radius - 2 - np.maximum(step, 0) * span
    center = rng.uniform(low, np.maximum(high, low))
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    for index in range(frames):
        frame = np.clip(rng.normal(60, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        cv2.fillPoly(
            frame,
            [shape_vertices(kind, center + step * index, radius, angle + spin * index)],
            color,
            lineType=cv2.LINE_AA,
        )
        video[index] = frame
    return video


def write_video(
    frames: np.ndarray,
    path: Path,
    fps: int = FPS,
    keyframe_every: int = 8,
    preset: str = "ultrafast",
) -> Path:
    """Encode uint8 RGB ``[N, H, W, 3]`` (H, W even) as H.264 ``.mp4`` at ``path``, a keyframe
    every ``keyframe_every`` frames (libx264 ``preset``: ``ultrafast`` writes no B-frames,
    ``medium`` and slower ones do)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(keyframe_every), "crf": "18", "preset": preset}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def make_moving_shapes(
    data_dir: str | Path,
    videos: dict[str, int],
    frames: int = 16,
    frame_size: int = 40,
    seed: int = 0,
) -> Path:
    """Write ``videos[split]`` videos per class into ``data_dir/<split>/<motion>/``, unless the
    folder already holds this exact dataset; returns ``data_dir``. Videos left from a larger
    dataset made there before are removed (the folder is read by listing it), and a
    regeneration cut short is not taken for a finished one (the record goes first)."""
    root = Path(data_dir)
    settings = {
        "videos": videos,
        "frames": frames,
        "frame_size": frame_size,
        "seed": seed,
        "motions": list(MOTIONS),
    }
    record = root / "dataset.json"
    if record.is_file() and json.loads(record.read_text()) == settings:
        return root
    record.unlink(missing_ok=True)
    for split, count in videos.items():
        rng = np.random.default_rng(mix_seed(seed, SPLIT_SALT[split]))
        for number in range(count):
            for motion in MOTIONS:
                write_video(
                    render_video(motion, frames, frame_size, rng),
                    root / split / motion / f"{number:04d}.mp4",
                )
        for motion in MOTIONS:
            for stale in (root / split / motion).glob("[0-9][0-9][0-9][0-9].mp4"):
                if int(stale.stem) >= count:
                    stale.unlink()
    atomic_write_json(record, settings)
    return root


@DATAMODULES.register("moving_shapes", batch=VideoBatch)
class MovingShapesVideoDataModule(VideoFolderDataModule):
    """Synthetic shapes moving left/right/up/down or rotating either way, written as .mp4
    files (offline, seeded); a single frame does not tell the class."""

    default_transforms = {"train": "video_train", "eval": "video_eval"}

    def __init__(
        self,
        data_dir: str = "data/moving_shapes",
        train_videos: int = 40,
        val_videos: int = 8,
        test_videos: int = 8,
        frames: int = 16,
        frame_size: int = 40,
        clip_length: int = 8,
        stride: int = 1,
        num_clips: int = 2,
        padding: Padding = "loop",
        flow_frames: int = 0,
        image_size: int | None = None,
        *,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        transforms: dict | None = None,
        limit: int | None = None,
    ):
        if frame_size < 16 or frame_size % 2:
            raise SpecError(f"frame_size: must be even and >= 16, got {frame_size}")
        videos_per_class = {"train": train_videos, "val": val_videos, "test": test_videos}
        check_minimums(
            {
                **{f"{split}_videos": (count, 1) for split, count in videos_per_class.items()},
                "frames": (frames, 1),
            }
        )
        super().__init__(
            data_dir,
            clip_length=clip_length,
            stride=stride,
            num_clips=num_clips,
            padding=padding,
            flow_frames=flow_frames,
            image_size=image_size or frame_size,
            mean=[0.25] * 3,
            std=[0.12] * 3,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            transforms=transforms,
            limit=limit,
        )
        self.videos_per_class = videos_per_class
        self.frames, self.frame_size = frames, frame_size

    @property
    def class_names(self) -> tuple[str, ...]:
        return MOTIONS

    def prepare_data(self) -> None:
        make_moving_shapes(
            self.root, self.videos_per_class, self.frames, self.frame_size, self.seed
        )
