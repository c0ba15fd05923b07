"""Shapes3D parts: the part rules, the written split, labels following their points, bad data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionflow.batches import PointCloudSegmentationBatch
from visionflow.datamodules import Shapes3DPartsDataModule, make_shapes3d_parts_dataset
from visionflow.datamodules.shapes3d_parts import FIRST_PART, PART_NAMES, part_labels
from visionflow.datamodules.shapes3d_render import primitive_mesh
from visionflow.errors import DataError
from visionflow.ops import sample_points_from_mesh


def labelled_samples(primitive: str, seed: int = 0, count: int = 2000):
    """``(verts, points, part labels)`` of ``count`` samples on one random ``primitive``."""
    verts, faces = primitive_mesh(primitive, np.random.default_rng(seed))
    points, normals = sample_points_from_mesh(
        torch.from_numpy(verts), torch.from_numpy(faces), count, torch.Generator().manual_seed(0)
    )
    points, normals = points.numpy(), normals.numpy()
    return verts, points, part_labels(primitive, verts, points, normals)


@pytest.mark.parametrize("primitive", ["cylinder", "cone"])
def test_lathe_caps_are_the_points_on_the_end_planes(primitive):
    verts, points, labels = labelled_samples(primitive)
    on_an_end = np.isclose(np.abs(points[:, 1]), verts[:, 1].max(), atol=1e-5)
    np.testing.assert_array_equal(labels == FIRST_PART[primitive], on_an_end)
    assert set(labels) == {FIRST_PART[primitive], FIRST_PART[primitive] + 1}


def test_box_faces_are_ranked_by_area():
    verts, points, labels = labelled_samples("box", seed=3)
    sides = verts.max(0) - verts.min(0)
    face_areas = 2 * sides.prod() / sides  # the two faces across each axis
    shares = np.bincount(labels - FIRST_PART["box"], minlength=3) / len(labels)
    np.testing.assert_allclose(shares, np.sort(face_areas) / face_areas.sum(), atol=0.03)


def test_torus_halves_split_at_the_centre_ring():
    verts, points, labels = labelled_samples("torus")
    radial = np.hypot(points[:, 0], points[:, 2])
    outer = labels == FIRST_PART["torus"] + 1
    assert radial[outer].min() > radial[~outer].max()
    assert set(labels) == {FIRST_PART["torus"], FIRST_PART["torus"] + 1}


def test_a_split_is_written_and_reproducible(tmp_path):
    path = make_shapes3d_parts_dataset(tmp_path / "a", samples=4, seed=2, num_points=40)
    again = make_shapes3d_parts_dataset(
        tmp_path / "b", samples=4, seed=2, num_points=40, write_files=False
    )
    first, second = np.load(path), np.load(again)
    for key in ("points", "point_labels", "labels"):
        np.testing.assert_array_equal(first[key], second[key])
    assert first["points"].shape == (4, 40, 3) and first["point_labels"].shape == (4, 40)
    assert len(list((tmp_path / "a" / "clouds").glob("*.ply"))) == 4
    assert not (tmp_path / "b" / "clouds").exists()


def tiny_parts(folder, **args) -> Shapes3DPartsDataModule:
    """A prepared ``shapes3d_parts`` in ``folder``: 4/2/2 clouds of 32 points unless ``args``
    say otherwise."""
    small = {"train_samples": 4, "val_samples": 2, "test_samples": 2, "num_points": 32}
    module = Shapes3DPartsDataModule(
        data_dir=str(folder), **{"write_files": False, **small, "batch_size": 4, **args}
    )
    module.prepare_data()
    return module


def test_batches_hold_a_label_per_point(tmp_path):
    module = tiny_parts(tmp_path)
    module.setup("fit")
    batch = next(iter(module.val_dataloader()))
    assert isinstance(batch, PointCloudSegmentationBatch)
    assert batch.points.shape == (2, 32, 3) and batch.point_labels.shape == (2, 32)
    assert module.info.num_classes == len(PART_NAMES) == 10


def test_labels_follow_their_points_through_dropout(tmp_path):
    dropout = {"train": [{"name": "RandomDropout", "max_ratio": 0.9}], "eval": "pointcloud_none"}
    module = tiny_parts(tmp_path, transforms=dropout)
    module.setup("fit")
    stored = module.splits["train"].fields
    batch = module.splits["train"].__getitems__([0, 1, 2, 3])
    for cloud in range(4):
        match = (batch.points[cloud][:, None] == stored["points"][cloud][None]).all(-1)
        source = match.float().argmax(1)  # [N] the stored point each slot holds
        assert match.any(1).all()
        assert (source == 0).any() and (source != torch.arange(32)).any()  # some dropped
        assert torch.equal(batch.point_labels[cloud], stored["point_labels"][cloud][source])


def rewrite_split(folder, **changes) -> None:
    with np.load(folder / "samples.npz") as data:
        arrays = {key: data[key] for key in data.files}
    np.savez(folder / "samples.npz", **{**arrays, **changes})


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda labels: labels[:, :-1], "do not match points"),
        (lambda labels: np.where(labels == labels[0, 0], 10, labels), "label 10 is outside 0..9"),
    ],
)
def test_bad_point_labels_are_a_data_error_naming_the_file(tmp_path, change, message):
    module = tiny_parts(tmp_path)
    with np.load(tmp_path / "val" / "samples.npz") as data:
        labels = data["point_labels"]
    rewrite_split(tmp_path / "val", point_labels=change(labels))
    with pytest.raises(DataError, match=message) as error:
        module.setup("fit")
    assert str(tmp_path / "val" / "samples.npz") in str(error.value)


def test_a_rewritten_split_keeps_no_clouds_of_the_old_one(tmp_path):
    make_shapes3d_parts_dataset(tmp_path, samples=3, seed=0, num_points=8)
    make_shapes3d_parts_dataset(tmp_path, samples=2, seed=1, num_points=8)
    assert sorted(p.name for p in (tmp_path / "clouds").iterdir()) == ["000001.ply", "000002.ply"]
    make_shapes3d_parts_dataset(tmp_path, samples=2, seed=2, num_points=8, write_files=False)
    assert not list((tmp_path / "clouds").iterdir())  # not seed 1's clouds


def test_clouds_asked_for_are_written_into_a_split_made_without_them(tmp_path):
    tiny_parts(tmp_path, num_points=8)
    tiny_parts(tmp_path, num_points=8, write_files=True)
    assert len(list((tmp_path / "train" / "clouds").glob("*.ply"))) == 4
