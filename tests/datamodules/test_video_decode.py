"""Video decoding: seeking reads what a full decode reads (real clips from ../shared/data and
B-frame videos), the decoder's scaling, kept containers across forks and rewrites, bad files,
frame folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visionflow.datamodules.video_clips import clip_frame_indices
from visionflow.datamodules.video_decode import count_frames, read_all_frames, read_clip
from visionflow.datamodules.video_moving_shapes import MOTIONS, render_video, write_video
from visionflow.errors import DataError


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    """A 12-frame 16x16 shape moving left (a keyframe every 8 frames, no B-frames)."""
    frames = render_video("left", 12, 16, np.random.default_rng(0))
    return write_video(frames, tmp_path_factory.mktemp("video") / "left.mp4")


def _write_variable_rate_video(frames: np.ndarray, times_ms: list[int], path: Path) -> Path:
    """H.264 ``.mp4`` of uint8 RGB ``[N, H, W, 3]`` shown at ``times_ms`` (ms, increasing,
    unevenly spaced), with B-frames and a keyframe every 4 frames."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"g": "4", "crf": "18", "preset": "medium"}
        for frame, time in zip(frames, times_ms, strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = time, Fraction(1, 1000)
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return path


def _decode_in_order(path: Path) -> np.ndarray:
    """uint8 RGB ``[N, H, W, 3]``: every frame as PyAV decodes them, counted in order."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_a_variable_frame_rate_video_reads_its_frames_in_order(tmp_path):
    """Frame ``i`` is the ``i``-th frame shown, however unevenly the frames are timed."""
    frames = render_video("right", 12, 16, np.random.default_rng(0))
    times_ms = [0, 40, 80, 100, 120, 200, 400, 420, 440, 460, 700, 740]
    path = _write_variable_rate_video(frames, times_ms, tmp_path / "vfr.mp4")
    in_order = _decode_in_order(path)
    assert count_frames(path) == len(in_order) == 12
    np.testing.assert_array_equal(read_all_frames(path), in_order)
    for start in (0, 3, 5, 7):
        indices = clip_frame_indices(12, 3, 2, start, "repeat")
        np.testing.assert_array_equal(read_clip(path, indices), in_order[indices])


@pytest.mark.parametrize("name, frames", [("demo.mp4", 280), ("test.avi", 164)])
def test_seeking_reads_the_frames_a_full_decode_reads(shared_data, name, frames):
    path = shared_data / "video" / name
    assert count_frames(path) == frames
    everything = read_all_frames(path)
    assert len(everything) == frames
    for start in (0, 150, frames - 20):  # before and after keyframes
        indices = clip_frame_indices(frames, 8, 2, start, "repeat")
        np.testing.assert_array_equal(read_clip(path, indices), everything[indices])


def test_seeking_past_b_frames_reads_what_a_full_decode_reads(tmp_path):
    """A video with B-frames (libx264 medium) and a keyframe every 10 frames: the clips that
    start before, on and after keyframes, read through one kept container, skipping the
    non-reference frames they do not show, equal a decode of every frame."""
    frames = np.concatenate(
        [render_video(motion, 20, 32, np.random.default_rng(1)) for motion in MOTIONS[:2]]
    )
    path = write_video(frames, tmp_path / "bframes.mp4", keyframe_every=10, preset="medium")
    everything = read_all_frames(path)
    assert len(everything) == 40
    for start in (0, 9, 10, 11, 17, 25):
        indices = clip_frame_indices(40, 6, 2, start, "repeat")
        np.testing.assert_array_equal(read_clip(path, indices), everything[indices])
        np.testing.assert_array_equal(read_clip(path, indices, seek=False), everything[indices])
    np.testing.assert_array_equal(read_clip(path, np.array([30, 3, 30])), everything[[30, 3, 30]])


def _area_resized(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[T, *size, 3]``: OpenCV's area averaging of full-size frames ``[T, H, W, 3]``."""
    import cv2

    return np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in frames])


def _grey(frames: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(int)


@pytest.mark.parametrize(
    "size, mean_limit, max_limit",
    [((32, 32), 0, 0), ((12, 20), 1.0, 5), ((48, 40), 2.5, 32)],  # measured 0.54 / 2, 1.6 / 25
)
def test_the_decoder_scales_frames_by_area_averaging(tmp_path, size, mean_limit, max_limit):
    """``read_clip(size=)`` scales during the RGB conversion (swscale's area averaging): grey
    levels of the 32x32 noisy video close to OpenCV's INTER_AREA of the full-size frames
    (equal at the stored size; upscaling weights differ more); frame folders by INTER_AREA."""
    import cv2

    frames = render_video("right", 6, 32, np.random.default_rng(2))
    path = write_video(frames, tmp_path / "video.mp4")
    indices = np.array([5, 0, 3])
    scaled = read_clip(path, indices, size=size)
    assert scaled.shape == (3, *size, 3) and scaled.dtype == np.uint8
    difference = np.abs(_grey(scaled) - _grey(_area_resized(read_clip(path, indices), size)))
    assert difference.mean() <= mean_limit and difference.max() <= max_limit
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(
        read_clip(folder, indices, size=size), _area_resized(frames[indices], size)
    )


def test_decoder_scaling_stays_close_to_the_full_size_path_on_a_real_video(shared_data):
    """On demo.mp4 (340x256) at 112x112: grey levels within 15 of INTER_AREA on the full-size
    RGB frames, mean under 0.5 (measured 0.16; colour channels: mean 1.5)."""
    path = shared_data / "video" / "demo.mp4"
    indices = np.arange(100, 132, 2)
    scaled = read_clip(path, indices, size=(112, 112))
    full = _area_resized(read_clip(path, indices), (112, 112))
    grey = np.abs(_grey(scaled) - _grey(full))
    assert grey.mean() < 0.5 and grey.max() <= 15
    assert np.abs(scaled.astype(int) - full).mean() < 2.5


def _exit_with_clip_check(video: Path, expected: np.ndarray) -> None:
    raise SystemExit(0 if np.array_equal(read_clip(video, np.arange(4)), expected) else 1)


def test_a_forked_worker_reads_a_video_its_parent_has_open(small_video):
    """Containers are closed before a fork: a child freeing its parent's decoders hangs."""
    import multiprocessing

    expected = read_clip(small_video, np.arange(4))  # the parent keeps the container open
    child = multiprocessing.get_context("fork").Process(
        target=_exit_with_clip_check, args=(small_video, expected)
    )
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked reader hung")
    assert child.exitcode == 0
    np.testing.assert_array_equal(read_clip(small_video, np.arange(4)), expected)  # reopened


def test_a_video_rewritten_in_place_is_read_anew(tmp_path):
    path = tmp_path / "video.mp4"
    first = render_video("left", 8, 16, np.random.default_rng(0))
    write_video(first, path)
    read_clip(path, np.arange(8))  # keeps the container open
    write_video(first[::-1].copy(), path)  # same path, other frames
    after = read_clip(path, np.arange(8)).astype(int)
    assert np.abs(after - first[::-1]).mean() < np.abs(after - first).mean()


def test_corrupt_and_truncated_videos_raise_data_errors_naming_the_file(tmp_path, small_video):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(DataError, match="garbage.mp4"):
        read_clip(garbage, np.arange(4))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(small_video.read_bytes()[: small_video.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.mp4"):
        read_clip(truncated, np.arange(12))


def test_frame_folders_read_like_videos(tmp_path):
    import cv2

    frames = render_video("right", 6, 16, np.random.default_rng(0))
    folder = tmp_path / "video"
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert count_frames(folder) == 6
    np.testing.assert_array_equal(read_clip(folder, np.array([5, 1, 1])), frames[[5, 1, 1]])


def test_frame_folders_sort_frame_numbers_naturally_and_ignore_other_files(tmp_path):
    """``frame_2`` comes before ``frame_10`` (numbers not zero-padded); a .txt is no frame."""
    import cv2

    frames = render_video("right", 12, 16, np.random.default_rng(0))
    folder = tmp_path / "video"
    folder.mkdir()
    for index, frame in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"frame_{index}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    assert count_frames(folder) == 12
    np.testing.assert_array_equal(read_all_frames(folder), frames)
