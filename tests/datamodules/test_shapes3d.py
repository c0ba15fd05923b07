"""Shapes3D: the rasterizer against known areas, the written split, the datamodules' batches."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from visionflow.batches import ImageToPointCloudBatch, PointCloudBatch
from visionflow.datamodules import (
    Shapes3DPointsDataModule,
    Shapes3DViewsDataModule,
    make_shapes3d_dataset,
)
from visionflow.datamodules.shapes3d_render import PRIMITIVES, box_mesh, primitive_mesh, render
from visionflow.errors import SpecError
from visionflow.ops import ico_sphere


def test_rasterizer_draws_a_sphere_as_a_disc_with_depth():
    verts, faces = (t.numpy() for t in ico_sphere(3))
    view = render(verts * 0.5, faces, 64, color=(255, 255, 255))
    assert view.mask.mean() == pytest.approx(math.pi * 0.25 / 4, rel=0.03)
    assert view.depth.max() == pytest.approx(0.5, abs=0.01)  # the front pole
    assert view.depth[~view.mask].max() == 0 and view.rgb[~view.mask].max() == 0
    lit = view.rgb[view.mask][:, 0]
    assert lit.min() >= 0.3 * 255 - 1 and lit.max() > 0.9 * 255  # ambient .. fully lit


def test_rasterizer_keeps_the_nearest_surface():
    verts, faces = box_mesh(np.array([1.0, 1.0, 1.0]))  # a cube of side 1
    view = render(verts.astype(np.float32), faces, 64, color=(200, 200, 200))
    assert view.mask.mean() == pytest.approx(0.25, abs=0.02)  # its front square
    np.testing.assert_allclose(view.depth[view.mask], 0.5, atol=1e-5)


def test_every_primitive_fits_the_unit_ball():
    rng = np.random.default_rng(0)
    for name in PRIMITIVES:
        verts, faces = primitive_mesh(name, rng)
        assert np.linalg.norm(verts, axis=1).max() == pytest.approx(0.9, abs=1e-5), name
        assert faces.max() < len(verts) and faces.dtype == np.int64


def test_a_split_is_written_and_reproducible(tmp_path):
    path = make_shapes3d_dataset(tmp_path / "a", samples=3, seed=4, image_size=32, num_points=50)
    again = make_shapes3d_dataset(
        tmp_path / "b", samples=3, seed=4, image_size=32, num_points=50, write_files=False
    )
    first, second = np.load(path), np.load(again)
    for key in ("images", "depth", "masks", "points", "normals", "labels"):
        np.testing.assert_array_equal(first[key], second[key])
    assert first["images"].shape == (3, 32, 32, 3) and first["points"].shape == (3, 50, 3)
    assert sorted(p.name for p in (tmp_path / "a" / "meshes").iterdir()) == [
        "000001.obj",
        "000002.obj",
        "000003.obj",
    ]
    assert len(list((tmp_path / "a" / "images").glob("*.png"))) == 3
    assert not (tmp_path / "b" / "meshes").exists()
    assert json.loads((tmp_path / "a" / "info.json").read_text())["seed"] == 4


def datamodule_args(tmp_path):
    return {
        "data_dir": str(tmp_path),
        "train_samples": 6,
        "val_samples": 2,
        "test_samples": 2,
        "image_size": 32,
        "num_points": 40,
        "batch_size": 4,
        "write_files": False,
    }


def test_points_datamodule_augments_train_only(tmp_path):
    datamodule = Shapes3DPointsDataModule(**datamodule_args(tmp_path))
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert isinstance(batch, PointCloudBatch) and batch.points.shape == (4, 40, 3)
    assert datamodule.info.num_points == 40 and datamodule.info.class_names == PRIMITIVES
    stored = datamodule.splits["val"].fields["points"][:2]
    torch.testing.assert_close(next(iter(datamodule.val_dataloader())).points, stored)
    points, labels = batch
    assert labels.dtype == torch.int64 and points.dtype == torch.float32


def test_views_datamodule_pairs_images_with_their_clouds(tmp_path):
    datamodule = Shapes3DViewsDataModule(**datamodule_args(tmp_path))
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()))
    assert isinstance(batch, ImageToPointCloudBatch)
    assert batch.images.shape == (2, 3, 32, 32) and batch.points.shape == (2, 40, 3)
    assert datamodule.info.image_size == (32, 32)


@pytest.mark.parametrize(
    "key, value", [("train_samples", 0), ("image_size", 8), ("num_points", 0), ("batch_size", 0)]
)
def test_bad_arguments_name_the_key(tmp_path, key, value):
    with pytest.raises(SpecError, match=key):
        Shapes3DPointsDataModule(**{**datamodule_args(tmp_path), key: value})


def test_bad_transform_names_the_place(tmp_path):
    with pytest.raises(SpecError, match=r"transforms.train\[0\].*Jiter"):
        Shapes3DPointsDataModule(
            **datamodule_args(tmp_path), transforms={"train": [{"name": "Jiter"}]}
        )


def sample_file_names(folder) -> dict[str, list[str]]:
    """The per-sample files under ``folder``'s ``meshes/`` and ``images/``, by folder."""
    return {
        name: sorted(p.name for p in (folder / name).glob("*")) for name in ("meshes", "images")
    }


def test_a_rewritten_split_keeps_no_files_of_the_old_one(tmp_path):
    small = {"image_size": 16, "num_points": 8}
    make_shapes3d_dataset(tmp_path, samples=3, seed=0, **small)
    make_shapes3d_dataset(tmp_path, samples=2, seed=1, **small)
    assert sample_file_names(tmp_path) == {
        "meshes": ["000001.obj", "000002.obj"],
        "images": ["000001.png", "000002.png"],
    }
    make_shapes3d_dataset(tmp_path, samples=2, seed=2, write_files=False, **small)
    assert sample_file_names(tmp_path) == {"meshes": [], "images": []}  # not seed 1's


def test_files_asked_for_are_written_into_a_split_made_without_them(tmp_path):
    args = {**datamodule_args(tmp_path), "train_samples": 2, "image_size": 16, "num_points": 8}
    Shapes3DPointsDataModule(**args).prepare_data()
    Shapes3DPointsDataModule(**{**args, "write_files": True}).prepare_data()
    assert sample_file_names(tmp_path / "train") == {
        "meshes": ["000001.obj", "000002.obj"],
        "images": ["000001.png", "000002.png"],
    }


def test_setup_alone_does_not_hold_a_split_made_with_other_settings(tmp_path):
    args = {**datamodule_args(tmp_path), "train_samples": 2, "image_size": 16, "num_points": 8}
    Shapes3DPointsDataModule(**args).prepare_data()
    datamodule = Shapes3DPointsDataModule(**{**args, "num_points": 12})
    datamodule.setup("fit")  # no prepare_data: setup writes what is missing or out of date
    assert datamodule.splits["train"].fields["points"].shape == (2, 12, 3)
