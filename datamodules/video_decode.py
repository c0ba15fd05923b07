"""Reading frames of a video file (PyAV) or of a folder of pre-extracted JPEG frames.

PyAV was measured against OpenCV and torchcodec on ../shared/data/video/demo.mp4
(docs/benchmarks.md, "Video"): torchcodec's wheel does not load without a system FFmpeg, and
PyAV's keyframe seek reads a 16-frame clip about 2x faster than OpenCV's ``CAP_PROP_POS_FRAMES``.

:func:`read_clip` seeks to the keyframe before the clip's first frame and decodes only up to
its last one. Frame ``i`` is the one whose presentation time is ``i / fps``. Containers whose
timestamps do not give frame numbers that way (AVI stores packets in decode order) are decoded
from the start, counting frames. A file that cannot be opened or decoded, or ends before a
frame the clip needs, raises a DataError naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from visionflow.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
#: containers whose timestamps number the frames (seekable by time)
SEEKABLE_FORMATS = ("mp4", "mov", "matroska", "webm")
BAD_FILE_HINT = "replace or delete the file, or set skip_bad_files: true"


def is_frame_folder(path: Path) -> bool:
    """A folder of pre-extracted frames (``00001.jpg``, ...) that stands for one video."""
    return path.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())


def count_frames(path: str | Path) -> int:
    """Frames in the video file or frame folder at ``path`` (the header's count when it has one,
    else counted by demuxing, which decodes nothing)."""
    path = Path(path)
    if path.is_dir():
        return len(_frame_files(path))
    with _open(path) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size > 0)


def read_clip(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[T, H, W, 3]``: frames ``indices`` (int ``[T]``, any order, repeats allowed)."""
    path = Path(path)
    if path.is_dir():
        return _read_frame_files(path, indices)
    wanted = sorted({int(i) for i in indices})
    frames = _decode_frames(path, wanted)
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise DataError(
            f"{path}: the video ends before frame {missing[0]} "
            f"(decoded {len(frames)} of the {len(wanted)} frames asked for)",
            hint=BAD_FILE_HINT,
        )
    return np.stack([frames[int(i)] for i in indices])


def read_all_frames(path: str | Path) -> np.ndarray:
    """uint8 RGB ``[N, H, W, 3]``: every frame, in order."""
    path = Path(path)
    if path.is_dir():
        return _read_frame_files(path, np.arange(len(_frame_files(path))))
    with _open(path) as container:
        return np.stack([frame for _, frame in _numbered_frames(container, path, seek_to=None)])


# ------------------------------------------------------------------------------------ internals


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise DataError(f"{path}: cannot open video ({error})", hint=BAD_FILE_HINT) from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream", hint=BAD_FILE_HINT)
    return container


def _decode_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """``{index: frame}`` for the sorted frame ``wanted``, seeking when the container allows."""
    last, keep = wanted[-1], set(wanted)
    frames: dict[int, np.ndarray] = {}
    with _open(path) as container:
        for index, frame in _numbered_frames(container, path, seek_to=wanted[0]):
            if index in keep:
                frames[index] = frame
            if index >= last:
                break
    return frames


def _numbered_frames(
    container, path: Path, seek_to: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, RGB frame)`` from the keyframe before ``seek_to`` (None or an unseekable
    container: from the start)."""
    import av

    stream = container.streams.video[0]
    numbering = _frame_numbering(container, stream)
    try:
        if seek_to and numbering is not None:
            start_pts = round(seek_to / numbering[1]) + numbering[0]
            container.seek(start_pts, stream=stream, backward=True, any_frame=False)
        for count, frame in enumerate(container.decode(stream)):
            index = count if numbering is None else round((frame.pts - numbering[0]) * numbering[1])
            yield index, frame.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        raise DataError(f"{path}: cannot decode video ({error})", hint=BAD_FILE_HINT) from None


def _frame_numbering(container, stream) -> tuple[int, float] | None:
    """``(first pts, frames per pts unit)`` when timestamps number the frames, else None."""
    formats = container.format.name.split(",")
    if not any(name in SEEKABLE_FORMATS for name in formats) or not stream.average_rate:
        return None
    return int(stream.start_time or 0), float(stream.time_base * stream.average_rate)


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def _read_frame_files(folder: Path, indices: np.ndarray) -> np.ndarray:
    import cv2

    files = _frame_files(folder)
    frames = {}
    for index in sorted({int(i) for i in indices}):
        if index >= len(files):
            raise DataError(
                f"{folder}: frame {index} asked for, the folder has {len(files)}",
                hint=BAD_FILE_HINT,
            )
        image = cv2.imread(str(files[index]), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"{files[index]}: cannot decode frame", hint=BAD_FILE_HINT)
        frames[index] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.stack([frames[int(i)] for i in indices])
