"""Video loading: clips/s the video_folder datamodule delivers vs a bare PyAV decode loop, and
clip-seeking decode vs decoding every frame from the start.

1. ``ratio = datamodule / bare loop`` (goal >= 0.9): the datamodule's train loader (random clip
   sampling + keyframe-seeking PyAV decode + frame-consistent ``video_flip_train`` augmentation
   + collate into ``[B, 3, T, 112, 112]``) against a loop that decodes clips of the same length,
   stride and random starts with PyAV directly (seek, decode, ``to_ndarray``) and nothing else.
   Both in one process (``--workers`` > 0 gives the datamodule worker processes; the bare loop
   stays one process, so keep 0 to compare like with like).
2. ``ratio = seek / from start`` (goal >= 3 on >= 10 s videos with a keyframe every 2-3 s):
   clips/s of :func:`read_clip` against decoding every frame from the video's start up to the
   clip's last frame, on ``demo.mp4`` as it is (keyframes at frames 0, 187, 230, 268 of 280) and
   re-encoded with a keyframe every 2.5 s.

Videos: ../shared/data/video/demo.mp4 (340x256, 280 frames), copied into a temporary
two-class folder.

    python benchmarks/video_loading.py                       # 16x112x112 clips, stride 2
    python benchmarks/video_loading.py --clips 48 --batch-size 8
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from visionflow.datamodules import VideoFolderDataModule
from visionflow.datamodules.video_decode import count_frames, read_all_frames, read_clip
from visionflow.datamodules.video_moving_shapes import write_video

DEMO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video" / "demo.mp4"


def bare_decode(
    path: Path, first: int, count: int, stride: int, seek: bool
) -> tuple[list[np.ndarray], int]:
    """Frames ``first, first + stride, ...`` (``count`` of them) with PyAV alone: seek to the
    keyframe before ``first`` (or decode from the start), decode up to the last one; and the
    number of frames decoded."""
    import av

    wanted = set(range(first, first + count * stride, stride))
    frames, decoded = [], 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.time_base * stream.average_rate)
        if seek:
            container.seek(round(first / rate), stream=stream, backward=True)
        for frame in container.decode(stream):
            decoded += 1
            index = round(frame.pts * rate)
            if index in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
            if index >= max(wanted):
                break
    return frames, decoded


def clips_per_second(read_one, starts: list[int]) -> float:
    began = time.perf_counter()
    for start in starts:
        read_one(start)
    return len(starts) / (time.perf_counter() - began)


def loader_throughput(root: Path, args: argparse.Namespace) -> float:
    datamodule = VideoFolderDataModule(
        str(root),
        clip_length=args.frames,
        stride=args.stride,
        image_size=112,
        test_fraction=0.0,
        val_fraction=0.0,
        batch_size=args.batch_size,
        num_workers=args.workers,
    )
    loader = datamodule.train_dataloader()
    clips, began = 0, time.perf_counter()
    while clips < args.clips:
        for batch in loader:
            clips += len(batch)
            if clips >= args.clips:
                break
    return clips / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--video",
        type=Path,
        default=DEMO.resolve(),
        help="the video to read (default: ../shared/data/video/demo.mp4)",
    )
    args = parser.parse_args()
    demo = args.video
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "videos"
        for label in ("a", "b"):
            (root / label).mkdir(parents=True)
            for copy in range(args.clips // 2):
                shutil.copy(demo, root / label / f"{copy}.mp4")
        span = (args.frames - 1) * args.stride + 1
        starts = (
            np.random.default_rng(0).integers(0, count_frames(demo) - span + 1, args.clips).tolist()
        )
        bare = clips_per_second(
            lambda s: bare_decode(demo, s, args.frames, args.stride, True), starts
        )
        ours = loader_throughput(root, args)
        print(
            f"datamodule {ours:.2f} clips/s, bare PyAV loop {bare:.2f} clips/s "
            f"({args.frames}x112x112, stride {args.stride}, {args.workers} workers)"
        )
        print(f"ratio = datamodule / bare loop = {ours / bare:.2f}")
        regular = Path(folder) / "keyframe_every_2.5s.mp4"  # 28 fps
        write_video(read_all_frames(demo), regular, fps=28, keyframe_every=70)
        for path, name in ((demo, demo.name), (regular, "demo re-encoded, keyframe every 2.5 s")):
            indices = [np.arange(s, s + span, args.stride) for s in starts]
            seek = clips_per_second(
                lambda s, path=path, indices=indices: read_clip(path, indices[starts.index(s)]),
                starts,
            )
            full = clips_per_second(
                lambda s, path=path: bare_decode(path, s, args.frames, args.stride, False), starts
            )
            work = [
                sum(bare_decode(path, s, args.frames, args.stride, flag)[1] for s in starts)
                / len(starts)
                for flag in (True, False)
            ]
            print(
                f"{name}: seek {seek:.2f} clips/s, from start {full:.2f} clips/s; frames "
                f"decoded per clip: seek {work[0]:.0f}, from start {work[1]:.0f}; "
                f"ratio = seek / from start = {seek / full:.2f}"
            )


if __name__ == "__main__":
    main()
