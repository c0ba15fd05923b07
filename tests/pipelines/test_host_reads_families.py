"""Training steps of the video, generative, 3D and panoptic families read nothing back from the
device (the method: tests/pipelines/test_host_reads.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.host_reads import (
    RecordEvaluation,
    RecordSteps,
    reads_during_fit,
    shapes_data,
    trainer_args,
)


def video_spec(root: Path, task: str, task_args: dict, **trainer) -> dict:
    """A tiny video net on MovingShapes (4 videos a class: 6 training batches an epoch), SGD
    (AdamW's CPU implementation reads its step count back; its CUDA one does not)."""
    return {
        "name": "host_reads",
        "task": {
            "name": task,
            "args": {"optimizer": "sgd", "lr": 0.01, "scheduler": "cosine", **task_args},
        },
        "data": {
            "name": "moving_shapes",
            "args": {
                "data_dir": str(root / "moving_shapes"),
                "train_videos": 4,
                "val_videos": 1,
                "test_videos": 1,
                "frames": 6,
                "frame_size": 16,
                "clip_length": 4,
                "flow_frames": 2,
                "batch_size": 4,
            },
        },
        "trainer": trainer_args(**trainer),
        "output_dir": str(root / "runs"),
    }


@pytest.mark.parametrize(
    "task, task_args",
    [
        ("video_classification", {"net": "single_frame", "net_args": {"width": 4}}),
        (
            "two_stream",
            {
                "rgb_net_args": {"width": 4},
                "flow_net": "mlp",
                "flow_net_args": {"hidden_sizes": [8]},
                "fusion": "learned",
            },
        ),
    ],
)
def test_video_training_steps_read_nothing_back(tmp_path, task, task_args):
    counts = reads_during_fit(video_spec(tmp_path, task, task_args), RecordSteps(7, 12), steps=12)
    assert not counts, dict(counts)  # the second epoch's 6 steps


def test_video_validation_and_test_steps_read_nothing_back(tmp_path):
    recorder = RecordEvaluation(epoch=1)
    spec = video_spec(
        tmp_path,
        "video_classification",
        {"net": "single_frame", "net_args": {"width": 4}},
        limit_val_batches=1.0,
    )
    counts = reads_during_fit(spec, recorder, steps=12)
    assert recorder.recorded == ["validate", "test"] and not counts, dict(counts)


def generative_spec(root: Path, task: str, task_args: dict) -> dict:
    """A tiny generative model on 40 digits of 8 px: 5 training batches an epoch; SGD (Adam's
    CPU implementation reads its step count back)."""
    return {
        "name": "host_reads",
        "task": {
            "name": task,
            "args": {"optimizer": "sgd", "sample_grid_rows": 0, **task_args},
        },
        "data": {
            "name": "digits",
            "args": {"limit": 40, "batch_size": 8, "image_size": 8},
        },
        "trainer": trainer_args(),
        "output_dir": str(root / "runs"),
    }


@pytest.mark.parametrize(
    "task, task_args, steps_per_batch",
    [
        ("vae", {"net_args": {"latent_dim": 2, "width": 4}}, 1),
        ("pixelcnn", {"net_args": {"width": 4, "layers": 1}, "conditional": True}, 1),
        (  # manual optimization: a generator and a discriminator step a batch
            "gan",
            {
                "net_args": {"latent_dim": 2, "width": 4},
                "loss": "wgan_gp",
                "conditional": True,
                "discriminator_optimizer": "sgd",
            },
            2,
        ),
    ],
)
def test_generative_training_steps_read_nothing_back(tmp_path, task, task_args, steps_per_batch):
    recorder = RecordSteps(6 * steps_per_batch, 10 * steps_per_batch)  # the second epoch's steps
    counts = reads_during_fit(
        generative_spec(tmp_path, task, task_args), recorder, steps=10 * steps_per_batch
    )
    assert not counts, dict(counts)


def shapes3d_spec(root: Path, task: str, net: str, net_args: dict, data: str, **data_args) -> dict:
    """A tiny 3D net on 8 Shapes3D samples (32 px views, 64 points, 16^3 grids): 4 training
    batches an epoch, SGD (AdamW's CPU implementation reads its step count back)."""
    return {
        "name": "host_reads",
        "task": {
            "name": task,
            "args": {"net": net, "net_args": net_args, "optimizer": "sgd", "scheduler": "none"},
        },
        "data": {
            "name": data,
            "args": {
                "data_dir": str(root / "shapes3d"),
                "train_samples": 8,
                "val_samples": 2,
                "test_samples": 2,
                "image_size": 32,
                "num_points": 64,
                "resolution": 16,
                "batch_size": 2,
                **data_args,
            },
        },
        "trainer": trainer_args(),
        "output_dir": str(root / "runs"),
    }


@pytest.mark.parametrize(
    "task, net, net_args, data",
    [
        (
            "pointcloud_classification",
            "pointnet",
            {"width": 4, "feature_dim": 8},
            "shapes3d_points",
        ),
        (
            "pointcloud_classification",
            "pointnet2",
            {"samples": [16, 4], "radii": [0.4, 0.8], "neighbours": [8, 8], "width": 4},
            "shapes3d_points",
        ),
        ("image_to_pointcloud", "psgn", {"width": 4, "depth": 2}, "shapes3d_views"),
        (
            "pointcloud_segmentation",
            "pointnet2_seg",
            {"samples": [16, 4], "radii": [0.4, 0.8], "neighbours": [8, 8], "width": 4},
            "shapes3d_parts",
        ),
        ("voxel_classification", "voxnet", {"width": 4, "hidden": 8}, "shapes3d_voxels"),
        (
            "image_to_voxel",
            "voxel_decoder",
            {"width": 4, "depth": 2, "channels": 4},
            "shapes3d_view_voxels",
        ),
        (
            "image_to_occupancy",
            "onet",
            {"width": 4, "depth": 2, "hidden": 8, "blocks": 1},
            "shapes3d_occupancy",
        ),
        (
            "image_to_mesh",
            "pixel2mesh",
            {"level": 1, "width": 4, "depth": 2, "hidden": 8, "blocks": 1, "stages": 2},
            "shapes3d_views",
        ),
    ],
)
def test_3d_training_steps_read_nothing_back(tmp_path, task, net, net_args, data):
    spec = shapes3d_spec(tmp_path, task, net, net_args, data)
    counts = reads_during_fit(spec, RecordSteps(5, 8), steps=8)  # epoch 2's steps
    assert not counts, dict(counts)


def panoptic_spec(root: Path, **trainer) -> dict:
    """A ResNet-18 Panoptic FPN on 8 generated 64 px scenes: 4 training batches an epoch, SGD
    (AdamW's CPU implementation reads its step count back)."""
    return {
        "name": "host_reads",
        "task": {
            "name": "panoptic_segmentation",
            "args": {"optimizer": {"name": "sgd", "lr": 0.01}, "stuff_area": 16},
        },
        "data": shapes_data("shapes_panoptic", root / "shapes_panoptic"),
        "trainer": trainer_args(**trainer),
        "output_dir": str(root / "runs"),
    }


@pytest.mark.slow
def test_panoptic_training_steps_read_nothing_back_beyond_torchvision(tmp_path):
    counts = reads_during_fit(panoptic_spec(tmp_path), RecordSteps(5, 8), steps=8)  # epoch 2's
    assert not counts, dict(counts)
