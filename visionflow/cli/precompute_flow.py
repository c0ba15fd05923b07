"""``visionflow data precompute-flow``: compute the optical flow of every video under a root once.

    visionflow data precompute-flow data/ucf101 [--flow-dir DIR] [--workers N]

Every video file (.mp4, .avi, .mkv, .mov, .webm) and frame folder under ROOT, at any depth, gets
its Farneback flow cached (``visionflow.datamodules.video_flow``) in ``--flow-dir`` (default
``ROOT/.flow``, where ``video_folder`` and ``moving_shapes`` look with ``flow_frames`` set).
Videos already cached are skipped, so an interrupted run resumes. A bad video raises a DataError
naming it (one line, exit code 2).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

EXAMPLE = "visionflow data precompute-flow data/moving_shapes --workers 2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, metavar="ROOT", help="folder of videos (any layout)")
    parser.add_argument(
        "--flow-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the flow cache (default: ROOT/.flow)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes computing flow in parallel (default: 1)",
    )


def find_videos(root: Path, flow_dir: Path) -> list[Path]:
    """Video files and frame folders under ``root`` (outside ``flow_dir``), sorted."""
    from visionflow.datamodules.video_decode import VIDEO_SUFFIXES, is_frame_folder

    found = []
    for path in sorted(root.rglob("*")):
        if flow_dir in path.parents or any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        if (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES) or is_frame_folder(path):
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    from visionflow.datamodules.video_flow import precompute_flow
    from visionflow.errors import DataError, writing_to

    root = args.root
    if not root.is_dir():
        raise DataError(f"{root}: no such folder", hint="give the folder that holds the videos")
    flow_dir = args.flow_dir or root / ".flow"
    videos = find_videos(root, flow_dir)
    if not videos:
        raise DataError(
            f"{root}: no videos found",
            hint="expected .mp4/.avi/.mkv/.mov/.webm files or folders of JPEG frames",
        )
    with writing_to("--flow-dir", flow_dir):
        flow_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(args.workers, len(videos)))  # more would get no video
    chunks = [videos[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        written = sum(
            len(paths)
            for paths in pool.map(
                precompute_flow, [root] * len(chunks), [flow_dir] * len(chunks), chunks
            )
        )
    print(
        f"{len(videos)} videos: {written} flow files written, {len(videos) - written} "
        f"already cached in {flow_dir}"
    )
    return 0
