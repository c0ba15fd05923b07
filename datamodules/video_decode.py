"""Reading frames of a video file (PyAV) or of a folder of pre-extracted JPEG frames.

PyAV was measured against OpenCV and torchcodec on ../shared/data/video/demo.mp4
(docs/benchmarks.md, "Video loading"): torchcodec's wheel does not load without a system
FFmpeg, and per CPU second PyAV's keyframe seek reads 1.6x the clips OpenCV's
``CAP_PROP_POS_FRAMES`` seek does (OpenCV is faster by the wall clock only by decoding on two
threads).

:func:`read_clip` decodes only what a clip needs: it seeks to the keyframe at or before the
clip's first frame, hands the decoder every packet up to the clip's last frame, lets it drop
the non-reference frames (B-frames no other frame predicts from) that the clip does not show,
converts to RGB only the frames the clip shows (with one kept converter), and stops after the
last one. With a ``size``, the RGB conversion also scales each frame (swscale's area
averaging, :data:`RESIZE_INTERPOLATION`), one pass instead of a full-size RGB frame and a
resize. Frame ``i`` is
the ``i``-th in presentation order: its timestamp is the ``i``-th smallest of the stream's
packets, read once by demuxing (no decoding) when the container is opened, so variable frame
rate videos number their frames as a full decode does. Containers whose timestamps do not
order the frames (AVI stores packets in decode order) are decoded from the start, counting
frames. Open containers are kept per process (:data:`OPEN_CONTAINERS` of them, most recently
used; closed before the process forks), so the clips of one video in a loader worker share
one. A file that cannot be opened or
decoded, or ends before a frame the clip needs, raises a DataError naming it.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
#: containers whose timestamps number the frames (seekable by time)
SEEKABLE_FORMATS = ("mp4", "mov", "matroska", "webm")
BAD_FILE_HINT = "replace or delete the file, or set skip_bad_files: true"
#: open containers kept per process (a loader worker reads a few videos at a time)
OPEN_CONTAINERS = 4
#: how ``read_clip(..., size=)`` scales frames: area averaging (swscale's ``SWS_AREA`` during
#: the RGB conversion; OpenCV's ``INTER_AREA`` for frame folders)
RESIZE_INTERPOLATION = "AREA"


def is_frame_folder(path: Path) -> bool:
    """A folder of pre-extracted frames (``00001.jpg``, ...) that stands for one video."""
    return path.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())


def count_frames(path: str | Path) -> int:
    """Frames in the video file or frame folder at ``path`` (the header's count when it has one,
    else counted by demuxing, which decodes nothing)."""
    path = Path(path)
    if path.is_dir():
        return len(_frame_files(path))
    video = _open_video(path)
    if video.stream.frames > 0:
        return int(video.stream.frames)
    video.rewind()
    return sum(1 for packet in video.container.demux(video.stream) if packet.size > 0)


def read_clip(
    path: str | Path,
    indices: np.ndarray,
    *,
    seek: bool = True,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """uint8 RGB ``[T, H, W, 3]``: frames ``indices`` (int ``[T]``, any order, repeats allowed),
    scaled to ``size = (H, W)`` by area averaging when given (else as stored).

    ``seek=False`` decodes every frame from the start instead (the baseline of
    ``benchmarks/video_loading.py``; the same frames come back)."""
    path = Path(path)
    if path.is_dir():
        return _read_frame_files(path, indices, size)
    wanted = sorted({int(i) for i in indices})
    video = _open_video(path)
    frames = video.decode(wanted, seek, size)
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
    return read_clip(path, np.arange(count_frames(path)), seek=False)


# ------------------------------------------------------------------------------------ internals


@dataclass
class _Video:
    """An open container, its video stream and how its timestamps number frames
    (``numbering``, None: count decoded frames)."""

    path: Path
    container: Any
    stream: Any
    numbering: _FrameTimes | None
    signature: tuple[int, int]  # the file's (mtime_ns, size) when opened
    reformatter: Any  # av's VideoReformatter, kept: a new one per frame costs 5x the conversion

    def rewind(self) -> None:
        self.container.seek(0, stream=self.stream, backward=True, any_frame=False)

    def decode(
        self, wanted: list[int], seek: bool, size: tuple[int, int] | None
    ) -> dict[int, np.ndarray]:
        """``{index: RGB frame [H, W, 3]}`` for the sorted frame numbers ``wanted``, scaled to
        ``size = (H, W)`` by area averaging during the RGB conversion when given."""
        import av

        height, width = size or (None, None)
        frames: dict[int, np.ndarray] = {}
        try:
            for index, frame in self._frames(wanted, seek):
                rgb = self.reformatter.reformat(
                    frame,
                    format="rgb24",
                    width=width,
                    height=height,
                    interpolation=RESIZE_INTERPOLATION if size else None,
                )
                frames[index] = rgb.to_ndarray()
                if index >= wanted[-1]:
                    break
        except av.FFmpegError as error:
            _forget(self.path)
            raise DataError(
                f"{self.path}: cannot decode video ({error})", hint=BAD_FILE_HINT
            ) from None
        finally:
            self.stream.codec_context.skip_frame = "DEFAULT"
        return frames

    def _frames(self, wanted: list[int], seek: bool) -> Iterator[tuple[int, Any]]:
        """``(index, frame)`` of the ``wanted`` frames, decoded from the keyframe at or before
        the first (from the start when not ``seek`` or the timestamps number no frames)."""
        keep = set(wanted)
        if self.numbering is None:
            self.rewind()
            for count, frame in enumerate(self.container.decode(self.stream)):
                if count in keep:
                    yield count, frame
            return
        index_of = self.numbering.index_of
        start = wanted[0] if seek else 0
        self.container.seek(self.numbering.pts[start], stream=self.stream, backward=True)
        codec = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            if seek and packet.pts is not None:
                shown = index_of.get(packet.pts) in keep
                codec.skip_frame = "DEFAULT" if shown else "NONREF"
            for frame in codec.decode(packet):
                index = index_of.get(frame.pts)
                if index in keep:
                    yield index, frame


@dataclass(frozen=True)
class _FrameTimes:
    """Presentation timestamps ``pts [N]`` of a video's frames, increasing (frame ``i`` shows
    at ``pts[i]``), and ``index_of``, their inverse ``{pts: i}``."""

    pts: list[int]
    index_of: dict[int, int]


_OPEN: OrderedDict[Path, _Video] = OrderedDict()


def _close_all() -> None:
    """Close every kept container. Runs before each fork (loader workers, process pools): a
    child must not inherit them, as it would share their file offsets and could not free
    their decoders, whose threads stay in the parent (freeing one in the child hangs)."""
    for path in list(_OPEN):
        _forget(path)


os.register_at_fork(before=_close_all)


def _open_video(path: Path) -> _Video:
    """The process's open container for ``path`` (opened now if needed)."""
    if path in _OPEN and _OPEN[path].signature == _signature(path):
        _OPEN.move_to_end(path)
        return _OPEN[path]
    _forget(path)
    video = _open(path)
    _OPEN[path] = video
    if len(_OPEN) > OPEN_CONTAINERS:
        _OPEN.popitem(last=False)[1].container.close()
    return video


def _forget(path: Path) -> None:
    """Close and drop the kept container of ``path``, if any."""
    video = _OPEN.pop(path, None)
    if video is not None:
        video.container.close()


def _signature(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except OSError as error:
        raise DataError(f"{path}: cannot open video ({error})", hint=BAD_FILE_HINT) from None
    return status.st_mtime_ns, status.st_size


def _open(path: Path) -> _Video:
    import av
    from av.video.reformatter import VideoReformatter

    signature = _signature(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise DataError(f"{path}: cannot open video ({error})", hint=BAD_FILE_HINT) from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream", hint=BAD_FILE_HINT)
    stream = container.streams.video[0]
    numbering = _frame_numbering(container, stream)
    return _Video(path, container, stream, numbering, signature, VideoReformatter())


def _frame_numbering(container, stream) -> _FrameTimes | None:
    """The frames' timestamps (demuxed, not decoded) when they order the frames, else None."""
    formats = container.format.name.split(",")
    if not any(name in SEEKABLE_FORMATS for name in formats):
        return None
    pts = sorted(
        packet.pts for packet in container.demux(stream) if packet.pts is not None and packet.size
    )
    if not pts:
        return None
    return _FrameTimes(pts, {value: index for index, value in enumerate(pts)})


def _frame_files(folder: Path) -> list[Path]:
    """The folder's frame images in natural order (``frame_2`` before ``frame_10``)."""
    frames = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(frames, key=_natural_key)


def _natural_key(path: Path) -> list[tuple[int, int | str]]:
    """Sort key of ``path``'s name that compares its runs of digits as numbers."""
    runs = re.split(r"(\d+)", path.name)
    return [(0, int(run)) if run.isdigit() else (1, run) for run in runs]


def _read_frame_files(
    folder: Path, indices: np.ndarray, size: tuple[int, int] | None = None
) -> np.ndarray:
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
        if size is not None:
            image = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
        frames[index] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.stack([frames[int(i)] for i in indices])
