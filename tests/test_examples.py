"""Smoke-run every example spec, shrunk with overrides, so a broken example fails the suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, SHARED_DATA
from visionflow.arguments import parameters_of
from visionflow.pipelines import run
from visionflow.registry import DATAMODULES
from visionflow.spec import load_spec

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
COMMON = [
    "trainer.fast_dev_run=true",
    "trainer.enable_progress_bar=false",
    "resources.backend=local",
]
SHAPES3D_SMALL = [
    "data.args.train_samples=4",
    "data.args.val_samples=2",
    "data.args.test_samples=2",
    "data.args.batch_size=2",
    "data.args.write_files=false",
]
#: example file -> extra overrides that keep its smoke run small (paths: see `shrink`)
SHRINK = {
    "shapes_detection.yaml": [
        "data.args.train_images=4",
        "data.args.val_images=2",
        "data.args.test_images=2",
        "data.args.batch_size=2",
    ],
    **{
        name: ["data.args.val_seeds=2", "data.args.test_seeds=2", "data.args.episodes_per_batch=2"]
        for name in (
            "cartpole_dqn.yaml",
            "cartpole_ppo.yaml",
            "acrobot_ppo.yaml",
            "catch_pixels_ppo.yaml",
            "catch_pixels_dqn.yaml",
        )
    },
    "shapes_segmentation.yaml": [
        "data.args.train_images=4",
        "data.args.val_images=2",
        "data.args.test_images=2",
        "data.args.batch_size=2",
    ],
    "shapes_panoptic.yaml": [
        "data.args.train_images=4",
        "data.args.val_images=2",
        "data.args.test_images=2",
        "data.args.batch_size=2",
    ],
    **{
        f"digits_{family}.yaml": [
            "data.args.limit=40",
            "data.args.batch_size=8",
            "task.args.classifier_epochs=1",
            "task.args.sample_grid_rows=1",
        ]
        for family in ("vae", "dcgan")
    },
    "digits_pixelcnn.yaml": [
        "data.args.limit=40",
        "data.args.batch_size=8",
        "task.args.classifier_epochs=1",
        "task.args.sample_grid_rows=1",
        "task.args.net_args={width: 8, layers: 2, gated: true}",
    ],
    "digits_adversarial.yaml": [
        "data.args.limit=40",
        "stages=[fit, test, {adversarial: {epsilons: "
        "[0.0, 0.05], steps: 2, black_box_queries: 4, max_images: 8}}]",
    ],
    "digits_backdoor.yaml": [
        "data.args.limit=40",
        "stages=[fit, {backdoor: {source_class: 7, target_class: 0, fraction: 0.5, "
        "epochs: 1, max_images: 8}}]",
    ],
    "digits_understanding.yaml": [
        "data.args.limit=40",
        "stages=[fit, {understand: {num_images: 2, layer: net.features.3, unit: 0, steps: 2}}]",
    ],
    "shapes3d_pointcloud.yaml": SHAPES3D_SMALL,
    "shapes3d_part_segmentation.yaml": [*SHAPES3D_SMALL, "data.args.num_points=64"],
    "shapes3d_voxels.yaml": [
        *SHAPES3D_SMALL,
        "data.args.resolution=16",
    ],
    "shapes3d_voxnet.yaml": [*SHAPES3D_SMALL, "data.args.resolution=16"],
    "shapes3d_mesh.yaml": [
        *SHAPES3D_SMALL,
        "task.args.net_args={level: 1, width: 4, depth: 2, hidden: 8, blocks: 1, stages: 2}",
    ],
    "shapes3d_occupancy.yaml": [
        *SHAPES3D_SMALL,
        "data.args.num_points=64",
        "task.args.mesh_resolution=12",
    ],
    **{
        name: [
            "data.args.train_videos=1",
            "data.args.val_videos=1",
            "data.args.test_videos=1",
            "data.args.frames=6",
            "data.args.frame_size=16",
            "data.args.clip_length=4",
            "data.args.batch_size=6",
            "data.args.num_workers=0",
        ]
        for name in ("moving_shapes_r3d.yaml", "moving_shapes_two_stream.yaml")
    },
}
SHRINK["shapes_instance_segmentation.yaml"] = SHRINK["shapes_detection.yaml"]
SHRINK["shapes_keypoints.yaml"] = SHRINK["shapes_detection.yaml"]
NEEDS_SHARED_DATA = {"coco_evaluate.yaml"}


def shrink(name: str, tmp_path) -> list[str]:
    overrides = [*COMMON, f"output_dir={tmp_path / 'runs'}", *SHRINK.get(name, [])]
    if generates_data(REPO_ROOT / "examples" / name):
        overrides.append(f"data.args.data_dir={tmp_path / 'data'}")
    return overrides


def generates_data(example: Path) -> bool:
    """Whether the example's datamodule writes the data it generates into ``data_dir`` (which
    ``shrink`` points at ``tmp_path``, never the checkout's ``data/``), whatever its name."""
    name = yaml.safe_load(example.read_text())["data"]["name"]
    return "data_dir" in {p.name for p in parameters_of(DATAMODULES.get(name).builder)}


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"digits_classification.yaml", "shapes_detection.yaml"}


def test_every_generated_data_example_is_smoke_run_in_tmp_path():
    generated = {p.name for p in EXAMPLES if generates_data(p)}
    assert {"shapes_detection.yaml", "moving_shapes_r3d.yaml", "shapes3d_mesh.yaml"} <= generated
    assert not generated & {"digits_classification.yaml", "coco_evaluate.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, tmp_path, monkeypatch):
    if path.name in NEEDS_SHARED_DATA and not SHARED_DATA.is_dir():
        pytest.skip(f"{path.name} reads {SHARED_DATA}, which is absent")
    monkeypatch.chdir(REPO_ROOT)  # examples give data paths relative to the repository
    results = run(load_spec(path, shrink(path.name, tmp_path)))
    assert results.stages, f"{path.name} ran no stage"
    assert (results.run_dir / "summary.json").is_file()
