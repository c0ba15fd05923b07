"""Every registered task on every compatible registered datamodule, through the real pipeline.

A new task or datamodule fails ``test_every_registered_name_has_a_fixture`` until it is given
small arguments here, so it is run end to end (``fast_dev_run``) the day it is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.datamodules.test_cifar import write_cifar10, write_cifar100
from tests.datamodules.test_detection_voc import write_voc
from tests.datamodules.test_detection_yolo import write_yolo
from tests.datamodules.test_image_folder import write_folder
from tests.datamodules.test_mnist import write_idx_set
from tests.datamodules.test_modelnet import write_modelnet
from tests.datamodules.test_pix3d import write_pix3d
from tests.datamodules.test_segmentation_data import (
    write_segmentation_folder,
    write_voc_segmentation,
)
from tests.datamodules.test_shapenet import write_shapenet
from visionflow.datamodules import make_shapes_dataset
from visionflow.pipelines import run
from visionflow.registry import DATAMODULES, TASKS
from visionflow.spec import parse_spec

SMALL = {"batch_size": 4, "num_workers": 0}
DETECTION_SMALL = {"batch_size": 2, "num_workers": 0}
MESHES_SMALL = {"num_points": 32, "image_size": 32, "resolution": 16, **SMALL}


def _mnist(root: Path) -> dict[str, Any]:
    write_idx_set(root / "MNIST" / "raw")
    return {"root": str(root), **SMALL}


def _fashion(root: Path) -> dict[str, Any]:
    write_idx_set(root / "FashionMNIST" / "raw")
    return {"root": str(root), **SMALL}


def _cifar10(root: Path) -> dict[str, Any]:
    write_cifar10(root)
    return {"root": str(root), **SMALL}


def _cifar100(root: Path) -> dict[str, Any]:
    write_cifar100(root, binary=False)
    return {"root": str(root), **SMALL}


def _image_folder(root: Path) -> dict[str, Any]:
    return {"root": str(write_folder(root / "images")), "image_size": 32, **SMALL}


def _shapes(root: Path) -> dict[str, Any]:
    return {
        "data_dir": str(root / "shapes"),
        "train_images": 4,
        "val_images": 2,
        "test_images": 2,
        "image_size": 64,
        **DETECTION_SMALL,
    }


def _coco(root: Path) -> dict[str, Any]:
    annotations = make_shapes_dataset(root, images=4, image_size=64).name
    return {
        "root": str(root),
        "train_annotations": annotations,
        "val_annotations": annotations,
        "test_annotations": annotations,
        **DETECTION_SMALL,
    }


def _voc(root: Path) -> dict[str, Any]:
    images = {
        "2008_000001": [{"name": "dog", "x1": 11, "y1": 6, "x2": 30, "y2": 25}],
        "2008_000002": [{"name": "cat", "x1": 2, "y1": 3, "x2": 20, "y2": 30}],
    }
    for split in ("train", "val", "test"):
        write_voc(root, images, split)
    return {"root": str(root), "test_set": "test", "class_names": ["cat", "dog"], **DETECTION_SMALL}


def _yolo(root: Path) -> dict[str, Any]:
    return {
        "dataset_yaml": str(write_yolo(root, ["1 0.5 0.5 0.2 0.5", "0 0.3 0.3 0.2 0.2"])),
        **DETECTION_SMALL,
    }


def _shapes_segmentation(root: Path) -> dict[str, Any]:
    return {**_shapes(root), "image_size": 32}


def _coco_segmentation(root: Path) -> dict[str, Any]:
    return {**_coco(root), "image_size": 32}


def _yolo_segmentation(root: Path) -> dict[str, Any]:
    return {**_yolo(root), "image_size": 32}


def _shapes_panoptic(root: Path) -> dict[str, Any]:
    counts = {"train_images": 2, "val_images": 2, "test_images": 2}
    return {"data_dir": str(root), **counts, "image_size": 32, **DETECTION_SMALL}


def _coco_panoptic(root: Path) -> dict[str, Any]:
    from visionflow.datamodules.panoptic_shapes import make_panoptic_shapes_dataset

    make_panoptic_shapes_dataset(root / "val", images=2, image_size=32)
    return {
        "root": str(root),
        **{
            key: {"train": f"val/{folder}", "val": f"val/{folder}"}
            for key, folder in (
                ("annotations", "panoptic.json"),
                ("images", "images"),
                ("panoptic_masks", "panoptic"),
            )
        },
        "image_size": 32,
        **DETECTION_SMALL,
    }


def _shapes3d(root: Path) -> dict[str, Any]:
    return {
        "data_dir": str(root / "shapes3d"),
        "train_samples": 4,
        "val_samples": 2,
        "test_samples": 2,
        "image_size": 32,
        "num_points": 64,
        "write_files": False,
        **SMALL,
    }


def _moving_shapes(root: Path) -> dict[str, Any]:
    return {
        "data_dir": str(root / "moving_shapes"),
        "train_videos": 1,
        "val_videos": 1,
        "test_videos": 1,
        "frames": 6,
        "frame_size": 16,
        "clip_length": 4,
        "flow_frames": 2,
        **SMALL,
    }


def _video_folder(root: Path) -> dict[str, Any]:
    from visionflow.datamodules.video_moving_shapes import make_moving_shapes

    make_moving_shapes(root / "videos", {"train": 1}, frames=6, frame_size=16)
    return {
        "root": str(root / "videos" / "train"),
        "clip_length": 4,
        "image_size": 16,
        "flow_frames": 2,
        "test_fraction": 0.2,
        "val_fraction": 0.2,
        **SMALL,
    }


#: datamodule name -> writes small data under a folder and returns the datamodule's arguments
DATA: dict[str, Callable[[Path], dict[str, Any]]] = {
    "digits": lambda root: {"limit": 40, **SMALL},
    "mnist": _mnist,
    "fashion_mnist": _fashion,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "image_folder": _image_folder,
    "shapes_detection": _shapes,
    "coco_detection": _coco,
    "voc_detection": _voc,
    "yolo_detection": _yolo,
    "shapes_instances": _shapes,
    "coco_instances": _coco,
    "shapes_keypoints": _shapes,
    "coco_keypoints": _coco,
    "experience": lambda root: {
        "num_envs": 2,
        "rollout_steps": 4,
        "rollouts_per_epoch": 2,
        "val_seeds": 2,
        "test_seeds": 2,
        "episodes_per_batch": 2,
    },
    "shapes_segmentation": _shapes_segmentation,
    "coco_segmentation": _coco_segmentation,
    "yolo_segmentation": _yolo_segmentation,
    "shapes_panoptic": _shapes_panoptic,
    "coco_panoptic": _coco_panoptic,
    "segmentation_folder": lambda root: {**write_segmentation_folder(root), **DETECTION_SMALL},
    "voc_segmentation": lambda root: {**write_voc_segmentation(root), **DETECTION_SMALL},
    "shapes3d_points": _shapes3d,
    "shapes3d_views": _shapes3d,
    "shapes3d_voxels": lambda root: {**_shapes3d(root), "resolution": 16},
    "shapes3d_view_voxels": lambda root: {**_shapes3d(root), "resolution": 16},
    "shapes3d_occupancy": _shapes3d,
    "shapes3d_parts": lambda root: {k: v for k, v in _shapes3d(root).items() if k != "image_size"},
    "modelnet_points": lambda root: {
        "root": str(write_modelnet(root)),
        "num_points": 32,
        "voxel_size": 0.5,
        "val_fraction": 0.34,
        **SMALL,
    },
    "modelnet_voxels": lambda root: {
        "root": str(write_modelnet(root)),
        "resolution": 16,
        "val_fraction": 0.34,
        **SMALL,
    },
    "moving_shapes": _moving_shapes,
    "video_folder": _video_folder,
    "shapenet_points": lambda root: {
        "root": str(write_shapenet(root)),
        "voxel_size": 0.5,
        **MESHES_SMALL,
    },
    "shapenet_views": lambda root: {"root": str(write_shapenet(root)), **MESHES_SMALL},
    "shapenet_view_voxels": lambda root: {"root": str(write_shapenet(root)), **MESHES_SMALL},
    "pix3d_views": lambda root: {"root": str(write_pix3d(root)), **MESHES_SMALL},
    "pix3d_view_voxels": lambda root: {"root": str(write_pix3d(root)), **MESHES_SMALL},
}

#: task name -> small arguments
TASK_ARGS: dict[str, dict[str, Any]] = {
    "image_classification": {"net": "lenet5", "scheduler": "none"},
    "vae": {"net_args": {"latent_dim": 2, "width": 4}, "sample_grid_rows": 1},
    "gan": {"net_args": {"latent_dim": 2, "width": 4}, "conditional": True, "sample_grid_rows": 1},
    "pixelcnn": {"net_args": {"width": 3, "layers": 1}, "sample_grid_rows": 0},
    "object_detection": {
        "net": "fasterrcnn_mobilenet_v3_large_fpn",
        "net_args": {"min_size": 64, "max_size": 64},
        "scheduler": "none",
    },
    "instance_segmentation": {
        "net_args": {"min_size": 64, "max_size": 64},
        "scheduler": "none",
    },
    "keypoint_detection": {
        "keypoint_sigmas": [0.05] * 4,
        "net_args": {"min_size": 64, "max_size": 64},
        "scheduler": "none",
    },
    "dqn": {"learning_starts": 4, "batch_size": 4, "net_args": {"hidden_sizes": [8]}},
    "policy_gradient": {"net_args": {"hidden_sizes": [8]}},
    "ppo": {"update_epochs": 1, "minibatches": 2, "net_args": {"hidden_sizes": [8]}},
    "semantic_segmentation": {
        "net": "unet",
        "net_args": {"depth": 2, "width": 4},
        "scheduler": "none",
    },
    "panoptic_segmentation": {"stuff_area": 4, "scheduler": "none"},
    "pointcloud_classification": {"net_args": {"width": 8, "feature_dim": 32}, "scheduler": "none"},
    "image_to_pointcloud": {"net_args": {"width": 4, "depth": 2}, "scheduler": "none"},
    "pointcloud_segmentation": {"net_args": {"width": 4, "feature_dim": 8}, "scheduler": "none"},
    "voxel_classification": {"net_args": {"width": 4, "hidden": 8}, "scheduler": "none"},
    "image_to_voxel": {
        "net_args": {"width": 4, "depth": 2, "channels": 8},
        "export_meshes": 2,
        "scheduler": "none",
    },
    "image_to_mesh": {
        "net_args": {"level": 1, "width": 4, "depth": 2, "hidden": 8, "blocks": 1, "stages": 2},
        "export_meshes": 1,
        "scheduler": "none",
    },
    "image_to_occupancy": {
        "net_args": {"width": 4, "depth": 2, "hidden": 8, "blocks": 1},
        "mesh_resolution": 8,
        "export_meshes": 1,
        "scheduler": "none",
    },
    "video_classification": {"net": "single_frame", "net_args": {"width": 4}, "scheduler": "none"},
    "two_stream": {
        "rgb_net_args": {"width": 4},
        "flow_net": "mlp",
        "flow_net_args": {"hidden_sizes": [8]},
        "fusion": "learned",
        "scheduler": "none",
    },
}


def builtin(registry) -> list:
    """The library's own entries (other test modules register stand-ins of their own)."""
    return [e for e in registry.entries() if e.builder.__module__.startswith("visionflow.")]


def compatible_pairs() -> list[tuple[str, str]]:
    return [
        (task.name, data.name)
        for task in builtin(TASKS)
        for data in builtin(DATAMODULES)
        if task.tags.get("batch") is data.tags.get("batch")
    ]


def test_every_registered_name_has_a_fixture():
    assert {e.name for e in builtin(DATAMODULES)} <= set(DATA), (
        "give the new datamodule a fixture in DATA"
    )
    assert {e.name for e in builtin(TASKS)} <= set(TASK_ARGS), (
        "give the new task arguments in TASK_ARGS"
    )


def lonely(entries: list, others: list) -> list[str]:
    """Names of ``entries`` whose batch type no entry of ``others`` speaks."""
    spoken = {other.tags.get("batch") for other in others}
    return [entry.name for entry in entries if entry.tags.get("batch") not in spoken]


def test_every_task_has_a_datamodule_and_every_datamodule_a_task():
    tasks, datamodules = builtin(TASKS), builtin(DATAMODULES)
    assert not lonely(tasks, datamodules), "tasks with no compatible datamodule"
    assert not lonely(datamodules, tasks), "datamodules with no compatible task"


def test_lonely_finds_an_entry_without_a_partner():
    task, data = TASKS.get("image_classification"), DATAMODULES.get("shapes_detection")
    assert lonely([task], [data]) == ["image_classification"]
    assert lonely([task], [DATAMODULES.get("digits")]) == []


def test_registered_tasks_and_datamodules_follow_the_protocol():
    from visionflow.datamodules import VisionDataModule
    from visionflow.tasks.base import VisionTask

    assert all(issubclass(e.builder, VisionTask) for e in builtin(TASKS))
    assert all(issubclass(e.builder, VisionDataModule) for e in builtin(DATAMODULES))


@pytest.mark.parametrize("task, data", compatible_pairs())
def test_task_runs_on_datamodule(task, data, tmp_path):
    spec = parse_spec(
        {
            "name": f"{task}-{data}",
            "task": {"name": task, "args": TASK_ARGS[task]},
            "data": {"name": data, "args": DATA[data](tmp_path / "data")},
            "trainer": {"fast_dev_run": True, "accelerator": "cpu", "enable_progress_bar": False},
            "stages": ["fit", "validate"],
            "output_dir": str(tmp_path / "runs"),
        }
    )
    results = run(spec)
    assert set(results.stages) == {"fit", "validate"}
    assert results.stages["validate"], "the validate stage logged no metric"
    assert (results.run_dir / "summary.json").is_file()
