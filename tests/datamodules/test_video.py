"""Video data: clip sampling, frame-consistent augmentation, flow under flips, the
video_folder layouts and moving_shapes (decoding: test_video_decode.py)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from visionflow.batches.video import normalize_levels
from visionflow.datamodules import MovingShapesVideoDataModule, VideoFolderDataModule
from visionflow.datamodules.transforms import TransformContext, build_transform
from visionflow.datamodules.transforms.video import (
    ClipColorJitter,
    ClipHorizontalFlip,
    ClipResize,
    augment_clip,
    clip_pipeline,
    write_clip,
    write_levels,
)
from visionflow.datamodules.video_clips import (
    clip_frame_indices,
    random_clip_start,
    uniform_clip_starts,
)
from visionflow.datamodules.video_decode import count_frames, read_clip
from visionflow.datamodules.video_flow import cached_flow, farneback_flow, stack_flow
from visionflow.datamodules.video_moving_shapes import (
    MOTIONS,
    make_moving_shapes,
    render_video,
    write_video,
)
from visionflow.errors import DataError, SpecError

SMALL_SHAPES = {"train": 2, "val": 1, "test": 1}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    return make_moving_shapes(
        tmp_path_factory.mktemp("video") / "shapes", SMALL_SHAPES, frames=12, frame_size=16
    )


# ------------------------------------------------------------------------------- sampling


def test_clip_indices_stride_and_padding():
    assert clip_frame_indices(100, 4, 3, 10).tolist() == [10, 13, 16, 19]
    assert clip_frame_indices(3, 6, 1, 0, "loop").tolist() == [0, 1, 2, 0, 1, 2]
    assert clip_frame_indices(3, 6, 1, 0, "repeat").tolist() == [0, 1, 2, 2, 2, 2]


def test_random_starts_keep_the_clip_inside_and_cover_every_start():
    rng = np.random.default_rng(0)
    starts = {random_clip_start(20, 7, rng) for _ in range(500)}
    assert starts == set(range(14))  # 20 - 7 + 1 starts
    assert random_clip_start(5, 7, rng) == 0  # shorter than the clip


def test_uniform_starts_span_the_video():
    assert uniform_clip_starts(100, 10, 3) == [0, 45, 90]
    assert uniform_clip_starts(5, 10, 2) == [0, 0]


# ---------------------------------------------------------------------------- augmentation


def _pipeline(spec, size=16):
    context = TransformContext(
        mean=(0.5,) * 3, std=(0.25,) * 3, image_size=(size, size), source_size=(size, size)
    )
    return clip_pipeline(build_transform(spec, context, "transforms.train"))


def transform_clip(pipeline, frames, flow=None):
    """``(clip float32 [C, T, h, w], flow [h, w, 2L] or None)``: a clip as the task gets it
    (uint8 levels in the batch normalized on the device, else normalized in the loader)."""
    frames, flow = augment_clip(pipeline, frames, flow)
    count, height, width, channels = frames.shape
    if not pipeline.keeps_levels(frames):
        clip = np.empty((channels, count, height, width), dtype=np.float32)
        return write_clip(pipeline, frames, clip), flow
    levels = write_levels(frames, np.empty((channels, count, height, width), dtype=np.uint8))
    normalization = torch.from_numpy(pipeline.normalization)
    return normalize_levels(torch.from_numpy(levels)[None], normalization)[0].numpy(), flow


def test_every_frame_of_a_clip_gets_the_same_crop_flip_and_color():
    frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pipeline = _pipeline("video_flip_train")
    outputs = set()
    for seed in range(6):
        pipeline.set_random_seed(seed)
        clip, _ = transform_clip(pipeline, np.stack([frame] * 5))  # [C, T, H, W]
        assert all(np.array_equal(clip[:, 0], clip[:, t]) for t in range(1, 5))
        outputs.add(clip[:, 0].tobytes())
    assert len(outputs) > 1, "the preset did not augment at all"


@pytest.mark.parametrize("preset", ["video_flip_train", "video_eval"])
def test_clip_path_gives_the_pixels_of_the_whole_albumentations_pipeline(preset):
    """augment_clip runs all but the final Normalize on uint8, write_levels writes the levels
    [C, T, H, W] and normalize_levels (the task, on the device) normalizes them: the pixels of
    the unsplit pipeline on the same seeds, bit for bit."""
    context = TransformContext(
        mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), image_size=(12, 12), source_size=(16, 20)
    )
    whole = build_transform(preset, context, "transforms.train")
    pipeline = clip_pipeline(whole)
    rng = np.random.default_rng(2)
    for seed in range(4):
        frames = rng.integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
        whole.set_random_seed(seed)
        pipeline.set_random_seed(seed)
        clip, _ = transform_clip(pipeline, frames)
        assert clip.dtype == np.float32
        np.testing.assert_array_equal(clip, whole(images=frames)["images"].transpose(3, 0, 1, 2))


def _frames_of_differing_brightness(rng, shape=(4, 9, 11, 3)) -> np.ndarray:
    """uint8 ``shape`` frames, each darker than the next (contrast blends with each own mean)."""
    scales = np.linspace(0.2, 1.0, shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    return (rng.integers(0, 256, shape) * scales).astype(np.uint8)


def test_clip_color_jitter_gives_albumentations_pixels_frame_by_frame():
    """ClipColorJitter on a whole clip: bit for bit albumentations' ColorJitter run on each
    frame, with the parameters the same seed samples (wide ranges, every order)."""
    rng = np.random.default_rng(3)
    ranges = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue": 0.2, "p": 1.0}
    for seed in range(40):
        frames = _frames_of_differing_brightness(rng)
        ours, albumentations = ClipColorJitter(**ranges), A.ColorJitter(**ranges)
        ours.set_random_seed(seed)
        albumentations.set_random_seed(seed)
        np.testing.assert_array_equal(
            ours(images=frames)["images"], albumentations(images=frames)["images"]
        )


@pytest.mark.parametrize("contrast", [0.0, 1.0])
@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0]])
def test_clip_color_jitter_edge_contrasts_match_albumentations(contrast, order):
    """Contrast 0 makes each frame its mean grey level (rounded), 1 leaves it."""
    frames = _frames_of_differing_brightness(np.random.default_rng(4))
    params = {"brightness": 1.3, "contrast": contrast, "saturation": 0.7, "hue": 0.1}
    reference = A.ColorJitter(p=1.0)
    expected = np.stack([reference.apply(frame, order=order, **params) for frame in frames])
    np.testing.assert_array_equal(
        ClipColorJitter(p=1.0).apply_to_images(frames, order=order, **params), expected
    )


@pytest.mark.parametrize("shape, dtype", [((3, 5, 7, 3), np.uint8), ((3, 5, 7), np.float32)])
def test_clip_flip_gives_albumentations_pixels(shape, dtype):
    frames = np.random.default_rng(5).integers(0, 256, shape).astype(dtype)
    expected = A.HorizontalFlip(p=1.0)(images=frames)["images"]
    np.testing.assert_array_equal(ClipHorizontalFlip(p=1.0)(images=frames)["images"], expected)


@pytest.mark.parametrize("size", [(6, 8), (20, 24)])
@pytest.mark.parametrize("area_for_downscale", [None, "image"])
def test_clip_resize_gives_albumentations_pixels(size, area_for_downscale):
    frames = _frames_of_differing_brightness(np.random.default_rng(6), (3, 10, 13, 3))
    arguments = {"height": size[0], "width": size[1], "area_for_downscale": area_for_downscale}
    expected = A.Resize(**arguments)(images=frames)["images"]
    np.testing.assert_array_equal(ClipResize(**arguments)(images=frames)["images"], expected)


@pytest.mark.parametrize(
    "flip, sign",
    [
        (A.HorizontalFlip(p=1.0), (-1, 1)),
        (ClipHorizontalFlip(p=1.0), (-1, 1)),
        (A.VerticalFlip(p=1.0), (1, -1)),
    ],
)
def test_flipping_flow_mirrors_it_and_negates_its_direction(flip, sign):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    flow = rng.normal(size=(16, 16, 4)).astype(np.float32)  # L = 2
    _, flipped = transform_clip(clip_pipeline(A.Compose([flip])), frames, flow)
    mirrored = flow[:, ::-1] if isinstance(flip, A.HorizontalFlip) else flow[::-1]
    np.testing.assert_allclose(flipped[..., 0::2], sign[0] * mirrored[..., 0::2])
    np.testing.assert_allclose(flipped[..., 1::2], sign[1] * mirrored[..., 1::2])


@pytest.mark.parametrize("resize", [A.Resize, ClipResize])
def test_resizing_scales_flow_with_the_image(resize):
    """An A.Resize runs in the pipeline; a leading ClipResize is taken out for the decoder
    and the flow is resized beside it: the same flow either way."""
    flow = np.random.default_rng(7).normal(1.0, 0.1, (16, 16, 4)).astype(np.float32)
    pipeline = clip_pipeline(A.Compose([resize(height=8, width=32)]))
    assert pipeline.decode_size == ((8, 32) if resize is ClipResize else None)
    frames, resized = transform_clip(pipeline, np.zeros((2, 16, 16, 3), dtype=np.uint8), flow)
    assert frames.shape == (3, 2, 8, 32)
    nearest = A.Resize(height=8, width=32).apply_to_mask(flow)
    np.testing.assert_allclose(resized[..., 0::2], 2.0 * nearest[..., 0::2])
    np.testing.assert_allclose(resized[..., 1::2], 0.5 * nearest[..., 1::2])


def test_farneback_sees_a_shape_move_right_and_stacks_in_order():
    frames = render_video("right", 4, 40, np.random.default_rng(3))
    flow = farneback_flow(frames)  # [3, H, W, 2]
    assert flow.shape == (3, 40, 40, 2)
    moving = np.abs(flow[..., 0]) > 0.3
    assert flow[..., 0][moving].mean() > 0.3  # rightwards
    stacked = stack_flow(flow, 1, 3)  # [H, W, 6]
    np.testing.assert_array_equal(stacked[..., 0:2], flow[1].astype(np.float32))
    np.testing.assert_array_equal(stacked[..., 4:6], flow[2].astype(np.float32))  # repeated


# ----------------------------------------------------------------------------- datamodules


def test_moving_shapes_batches_with_flow(shapes_root):
    datamodule = MovingShapesVideoDataModule(
        str(shapes_root),
        **{f"{s}_videos": n for s, n in SMALL_SHAPES.items()},
        frames=12,
        frame_size=16,
        clip_length=4,
        num_clips=3,
        flow_frames=2,
        batch_size=6,
    )
    datamodule.prepare_data()
    datamodule.setup()
    assert datamodule.info.class_names == MOTIONS and datamodule.info.flow_frames == 2
    batch = next(iter(datamodule.train_dataloader()))
    assert batch.clips.shape == (6, 3, 4, 16, 16) and batch.flows.shape == (6, 4, 16, 16)
    evaluation = next(iter(datamodule.test_dataloader()))
    assert evaluation.video_index.tolist() == [0, 0, 0, 1, 1, 1]  # 3 clips a video
    test_clips = datamodule.dataset("test")
    assert len(test_clips) == 6 * 3
    items = [test_clips[i] for i in range(6)]  # each written into its own row of the batch
    shape = evaluation.clips.shape[1:]
    expected = [write_levels(i.frames, np.empty(shape, np.uint8)) for i in items]
    assert evaluation.clips.dtype == torch.uint8  # normalized by the task, on the device
    np.testing.assert_array_equal(evaluation.clips.numpy(), np.stack(expected))
    normalized = evaluation.normalized()
    assert normalized.clips.dtype == torch.float32 and normalized.normalization is None
    np.testing.assert_array_equal(
        normalized.clips.numpy(),
        np.stack([transform_clip(test_clips.pipeline, i.frames)[0] for i in items]),
    )


def test_video_folder_reads_ucf101_split_files(tmp_path, shapes_root):
    root = tmp_path / "ucf"
    for motion in ("left", "up"):
        for index, video in enumerate(sorted((shapes_root / "train" / motion).glob("*.mp4"))):
            (root / motion).mkdir(parents=True, exist_ok=True)
            (root / motion / f"v_{motion}_g0{index}.mp4").write_bytes(video.read_bytes())
    (root / "trainlist01.txt").write_text(
        "left/v_left_g00.mp4 1\nup/v_up_g00.mp4 2\nleft/v_left_g01.mp4 1\nup/v_up_g01.mp4 2\n"
    )
    (root / "testlist01.txt").write_text("left/v_left_g01.mp4\n")
    datamodule = VideoFolderDataModule(
        str(root),
        clip_length=4,
        image_size=16,
        val_fraction=0.5,
        split_files={"train": "trainlist01.txt", "test": "testlist01.txt"},
        batch_size=2,
    )
    datamodule.setup()
    assert datamodule.class_names == ("left", "up")
    assert [Path(p).name for p, _ in datamodule.dataset("test").samples] == ["v_left_g01.mp4"]
    assert len(datamodule.dataset("train").samples) + len(datamodule.dataset("val").samples) == 4
    assert next(iter(datamodule.test_dataloader())).clips.shape[1:] == (3, 4, 16, 16)


def test_ucf101_split_files_find_videos_stored_with_another_suffix_or_case(tmp_path, shapes_root):
    """UCF101's lists name .avi files; videos converted to .mp4 (or a name's case changed)
    are the ones read, and a listed video that is not there fails the setup, naming it."""
    root = tmp_path / "ucf"
    for motion in ("left", "up"):
        (root / motion).mkdir(parents=True)
        video = sorted((shapes_root / "train" / motion).glob("*.mp4"))[0]
        (root / motion / f"v_{motion}_g01.mp4").write_bytes(video.read_bytes())
    (root / "trainlist01.txt").write_text("left/v_left_g01.avi 1\nup/V_UP_G01.avi 2\n")
    (root / "testlist01.txt").write_text("left/v_left_g01.avi\n")
    split_files = {"train": "trainlist01.txt", "test": "testlist01.txt"}
    datamodule = VideoFolderDataModule(str(root), clip_length=4, split_files=split_files)
    datamodule.setup()
    assert {Path(p).relative_to(root).as_posix() for p in datamodule.videos()} == {
        "left/v_left_g01.mp4",
        "up/v_up_g01.mp4",
    }
    (root / "testlist01.txt").write_text("left/v_left_g02.avi\n")
    with pytest.raises(DataError, match="v_left_g02.avi"):
        VideoFolderDataModule(str(root), clip_length=4, split_files=split_files).setup()


def test_clips_are_read_at_the_image_size_by_the_decoder(shapes_root):
    """The eval preset's resize is the decoder's: an item's frames are read_clip's at the
    image size (not a resize of the full-size frames), and the batch has that size."""
    datamodule = VideoFolderDataModule(str(shapes_root), clip_length=4, image_size=8)
    clips = datamodule.dataset("test")
    assert clips.pipeline.decode_size == (8, 8)
    path, _ = clips.samples[0]
    indices = clip_frame_indices(count_frames(path), 4, 2, 0)  # clip 0 starts at frame 0
    np.testing.assert_array_equal(clips[0].frames, read_clip(path, indices, size=(8, 8)))
    assert next(iter(datamodule.test_dataloader())).clips.shape[1:] == (3, 4, 8, 8)


def test_a_bad_video_fails_the_batch_or_is_skipped(tmp_path, shapes_root):
    root = tmp_path / "bad"
    for motion in ("left", "up"):
        (root / motion).mkdir(parents=True)
        write_video(render_video(motion, 8, 16, np.random.default_rng(0)), root / motion / "a.mp4")
    (root / "up" / "broken.mp4").write_bytes(b"\x00" * 64)
    arguments = {
        "clip_length": 4,
        "image_size": 16,
        "test_fraction": 0.0,
        "val_fraction": 0.0,
        "batch_size": 3,
        "transforms": {"train": "video_eval"},
    }
    with pytest.raises(DataError, match="broken.mp4"):
        loader = VideoFolderDataModule(str(root), **arguments).train_dataloader()
        list(loader)
    with pytest.warns(UserWarning, match="broken.mp4"):
        batch = next(
            iter(
                VideoFolderDataModule(
                    str(root), skip_bad_files=True, **arguments
                ).train_dataloader()
            )
        )
    assert len(batch) == 2


@pytest.mark.parametrize(
    "arguments, key",
    [
        ({"clip_length": 0}, "clip_length"),
        ({"padding": "mirror"}, "padding"),
        ({"split_files": {"val": "x"}}, "split_files"),
    ],
)
def test_bad_clip_arguments_name_the_key(tmp_path, arguments, key):
    with pytest.raises(SpecError, match=key):
        VideoFolderDataModule(str(tmp_path), **arguments)


def test_precompute_flow_caches_every_video_once(tmp_path, shapes_root, capsys):
    from visionflow.cli import main

    cache = tmp_path / "flow"
    assert (
        main(["data", "precompute-flow", str(shapes_root / "test"), "--flow-dir", str(cache)]) == 0
    )
    assert "6 videos: 6 flow files written" in capsys.readouterr().out
    flow = np.load(cache / "left" / "0000.mp4.flow.npy")
    assert flow.shape == (11, 16, 16, 2) and flow.dtype == np.float16
    assert (
        main(["data", "precompute-flow", str(shapes_root / "test"), "--flow-dir", str(cache)]) == 0
    )
    assert "0 flow files written, 6 already cached" in capsys.readouterr().out
    assert main(["data", "precompute-flow", str(tmp_path / "absent")]) == 2


def test_regenerating_moving_shapes_leaves_only_the_new_videos(tmp_path, monkeypatch):
    from visionflow.datamodules import video_moving_shapes

    root = make_moving_shapes(tmp_path, {"train": 3, "val": 1, "test": 1}, frames=4, frame_size=16)
    make_moving_shapes(root, {"train": 1, "val": 1, "test": 1}, frames=4, frame_size=16)
    assert len(list((root / "train").rglob("*.mp4"))) == len(MOTIONS)  # not 3 per class

    def cut_short(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(video_moving_shapes, "write_video", cut_short)
    with pytest.raises(KeyboardInterrupt):
        make_moving_shapes(root, {"train": 2, "val": 1, "test": 1}, frames=4, frame_size=16)
    assert not (root / "dataset.json").exists()  # the half-written folder is not taken as done


def test_a_cached_flow_older_than_its_video_is_computed_anew(tmp_path):
    root = make_moving_shapes(tmp_path, {"train": 1, "val": 1, "test": 1}, frames=4, frame_size=16)
    video = root / "test" / "left" / "0000.mp4"
    assert cached_flow(video, root, root / ".flow").shape == (3, 16, 16, 2)
    make_moving_shapes(root, {"train": 1, "val": 1, "test": 1}, frames=6, frame_size=24)
    assert cached_flow(video, root, root / ".flow").shape == (5, 24, 24, 2)  # not the old one
