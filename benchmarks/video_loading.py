"""Video loading: clips/s the video_folder datamodule delivers vs a bare loop decoding the same
clips, and clip-seeking decode vs decoding every frame from the start.

1. ``ratio = datamodule / bare loop`` (goal >= 0.9): the datamodule's train loader (random clip
   sampling + keyframe-seeking PyAV decode, scaled to 112x112 during the RGB conversion +
   frame-consistent ``video_flip_train`` augmentation + collate into a uint8 batch
   ``[B, 3, T, 112, 112]``, normalized later by the task on the device) against a loop that
   calls :func:`read_clip` (the same PyAV decode, full-size RGB frames) on exactly the clips the
   loader read (recorded during its run) and does nothing else. Both in this one process (no
   loader workers), so they compare like with like.
2. ``ratio = seek / from start`` (goal >= 3 on >= 10 s videos with a keyframe every 2-3 s): the
   same clips (random starts) read by :func:`read_clip` twice, with the same library, open
   container and RGB conversion: seeking to the keyframe at or before the clip (decoding only
   the frames it needs), and ``seek=False``, decoding every frame from the start up to the
   clip's last. On ``demo.mp4`` as it is (keyframes at frames 0, 187, 230, 268 of 280) and
   re-encoded by libx264 (default preset, B-frames) with a keyframe every 2.5 s. OpenCV's
   ``CAP_PROP_POS_FRAMES`` seek on the same clips is shown for comparison.

Videos: ../shared/data/video/demo.mp4 (340x256, 28 fps, 280 frames = 10 s), copied into a
temporary two-class folder.

    python benchmarks/video_loading.py                       # 16x112x112 clips, stride 2
    python benchmarks/video_loading.py --clips 48 --batch-size 8
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from visionflow.datamodules import VideoFolderDataModule, video_folder
from visionflow.datamodules.video_decode import count_frames, read_all_frames, read_clip
from visionflow.datamodules.video_moving_shapes import write_video

DEMO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video" / "demo.mp4"
Clip = tuple[Path, np.ndarray]  # a video and the frame indices [T] one clip reads


def opencv_clip(path: Path, indices: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[T, H, W, 3]`` of consecutive-stride ``indices`` with OpenCV's frame seek."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, int(indices[0]))
    frames = {}
    for index in range(int(indices[0]), int(indices[-1]) + 1):
        ok, frame = capture.read()
        if ok and index in indices:
            frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    capture.release()
    return np.stack([frames[int(i)] for i in indices])


def clips_per_second(
    read: Callable[[Path, np.ndarray], np.ndarray], clips: list[Clip]
) -> tuple[float, float]:
    """Clips/s of ``read`` over ``clips``: by the wall clock and by this process's CPU time
    (which other processes on a loaded machine disturb far less)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for path, indices in clips:
        read(path, indices)
    return len(clips) / (time.perf_counter() - wall), len(clips) / (time.process_time() - cpu)


def loader_throughput(
    root: Path, args: argparse.Namespace
) -> tuple[tuple[float, float], list[Clip]]:
    """Clips/s of the train loader (wall clock, CPU time), and the clips it read (in order)."""
    datamodule = VideoFolderDataModule(
        str(root),
        clip_length=args.frames,
        stride=args.stride,
        image_size=112,
        test_fraction=0.0,
        val_fraction=0.0,
        batch_size=args.batch_size,
        num_workers=0,  # the recording below sees this process's reads only
    )
    read: list[Clip] = []

    def recording_read_clip(path, indices, **options):
        read.append((Path(path), np.asarray(indices)))
        return read_clip(path, indices, **options)

    video_folder.read_clip = recording_read_clip
    loader = datamodule.train_dataloader()
    clips, wall, cpu = 0, time.perf_counter(), time.process_time()
    while clips < args.clips:
        for batch in loader:
            clips += len(batch)
            if clips >= args.clips:
                break
    rates = clips / (time.perf_counter() - wall), clips / (time.process_time() - cpu)
    video_folder.read_clip = read_clip
    return rates, read


def medians(rates: list[tuple[float, float]]) -> tuple[float, float]:
    """The median wall-clock and CPU-time rates of ``(wall, cpu)`` rounds."""
    return float(np.median([r[0] for r in rates])), float(np.median([r[1] for r in rates]))


def loader_comparison(root: Path, args: argparse.Namespace) -> None:
    """The train loader vs a bare ``read_clip`` loop on the clips it read, ``args.rounds``
    rounds in turn (each loader starts afresh, so every round reads the same clips)."""
    ours, bare = [], []
    for _ in range(args.rounds):
        rates, read = loader_throughput(root, args)
        ours.append(rates)
        bare.append(clips_per_second(read_clip, read))
    (ours_wall, ours_cpu), (bare_wall, bare_cpu) = medians(ours), medians(bare)
    print(
        f"datamodule {ours_wall:.2f} clips/s ({ours_cpu:.2f} by CPU time), bare read_clip loop "
        f"on the same {len(read)} clips {bare_wall:.2f} ({bare_cpu:.2f}); median of "
        f"{args.rounds} rounds ({args.frames}x112x112, stride {args.stride})"
    )
    print(
        f"ratio = datamodule / bare loop = {ours_wall / bare_wall:.2f} "
        f"({ours_cpu / bare_cpu:.2f} by CPU time)"
    )


def seek_comparison(video: Path, name: str, starts: list[int], args: argparse.Namespace) -> None:
    """Seek vs from-start vs OpenCV on the same clips, ``args.rounds`` interleaved rounds;
    prints the median clips/s of each (wall clock, CPU time) and their ratios."""
    clips = [(video, np.arange(s, s + args.frames * args.stride, args.stride)) for s in starts]
    for path, indices in clips[:4]:  # the two ways read the same frames
        np.testing.assert_array_equal(
            read_clip(path, indices), read_clip(path, indices, seek=False)
        )
    readers = {
        "seek": read_clip,
        "from start": lambda path, indices: read_clip(path, indices, seek=False),
        "OpenCV seek": opencv_clip,
    }
    rounds: dict[str, list[tuple[float, float]]] = {label: [] for label in readers}
    for _ in range(args.rounds):
        for label, read in readers.items():
            rounds[label].append(clips_per_second(read, clips))
    wall = {label: medians(rates)[0] for label, rates in rounds.items()}
    cpu = {label: medians(rates)[1] for label, rates in rounds.items()}
    shown = ", ".join(f"{label} {wall[label]:.2f} ({cpu[label]:.2f})" for label in readers)
    print(
        f"{name}: clips/s by wall clock (by CPU time), median of {args.rounds} rounds: {shown}; "
        f"ratio = seek / from start = {wall['seek'] / wall['from start']:.2f} "
        f"({cpu['seek'] / cpu['from start']:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds of each comparison")
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
        loader_comparison(root, args)
        span = (args.frames - 1) * args.stride + 1
        starts = (
            np.random.default_rng(0).integers(0, count_frames(demo) - span + 1, args.clips).tolist()
        )
        regular = Path(folder) / "keyframe_every_2.5s.mp4"  # 28 fps
        write_video(read_all_frames(demo), regular, fps=28, keyframe_every=70, preset="medium")
        seek_comparison(demo, demo.name, starts, args)
        seek_comparison(regular, "demo re-encoded, keyframe every 2.5 s", starts, args)


if __name__ == "__main__":
    main()
