"""ModelNetDataModule on a small ModelNet-layout folder of OFF files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from visionflow.batches import PointCloudBatch, VoxelBatch
from visionflow.datamodules import ModelNetDataModule, ModelNetVoxelsDataModule
from visionflow.errors import DataError, SpecError
from visionflow.mesh_files import voxel_downsample

TETRAHEDRON = "OFF4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
SQUARE = "OFF\n4 1 0\n0 0 0\n2 0 0\n2 2 0\n0 2 0\n4 0 1 2 3\n"


def write_modelnet(root: Path, train: int = 3, test: int = 1) -> Path:
    """Two classes (tetrahedron: glued ModelNet header; square: a quad face)."""
    for name, text in (("square", SQUARE), ("tetra", TETRAHEDRON)):
        for split, count in (("train", train), ("test", test)):
            folder = root / name / split
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                (folder / f"{name}_{index:04d}.off").write_text(text)
    return root


def test_reads_samples_and_normalizes(tmp_path):
    datamodule = ModelNetDataModule(
        root=str(write_modelnet(tmp_path)), num_points=64, val_fraction=0.34, batch_size=8
    )
    assert datamodule.info.class_names == ("square", "tetra")
    datamodule.setup("fit")
    assert {s: len(d) for s, d in datamodule.splits.items()} == {"train": 4, "val": 2, "test": 2}
    batch = next(iter(datamodule.val_dataloader()))
    assert isinstance(batch, PointCloudBatch) and batch.points.shape == (2, 64, 3)
    radius = batch.points.norm(dim=2).amax(1)
    torch.testing.assert_close(radius, torch.ones(2))
    squares = batch.points[batch.labels == 0]
    assert squares[..., 2].abs().max() < 1e-6  # the square is flat


def test_missing_and_empty_folders_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        _ = ModelNetDataModule(root=str(tmp_path / "absent")).info
    write_modelnet(tmp_path, test=0)
    with pytest.raises(DataError, match="square/test: no .off meshes"):
        ModelNetDataModule(root=str(tmp_path)).setup("test")


def test_voxel_grids_of_a_known_mesh(tmp_path):
    datamodule = ModelNetVoxelsDataModule(
        root=str(write_modelnet(tmp_path)), resolution=16, val_fraction=0.34, batch_size=8
    )
    assert datamodule.info.resolution == 16 and datamodule.info.in_channels == 1
    datamodule.setup("fit")
    batch = next(iter(datamodule.test_dataloader()))
    assert isinstance(batch, VoxelBatch) and batch.voxels.shape == (2, 1, 16, 16, 16)
    square = batch.voxels[batch.labels == 0][0, 0].bool()
    # the square spans [-1, 1]^2 at z = 0, the face between cell layers 7 and 8: layer 8
    assert square[8].all() and square.sum() == 16 * 16
    tetra = batch.voxels[batch.labels == 1][0, 0].bool()
    assert tetra[0, 0, 0] and tetra[0, 0, 15] and tetra[15, 0, 0] and not tetra[15, 15, 15]


def test_voxel_grids_refuse_point_cloud_transforms(tmp_path):
    datamodule = ModelNetVoxelsDataModule(
        root=str(write_modelnet(tmp_path)), transforms={"train": "pointcloud_train"}
    )
    with pytest.raises(SpecError, match="transforms: voxel grids"):
        datamodule.setup("fit")


def test_fill_makes_closed_meshes_solid_and_warns_about_open_ones(tmp_path):
    arguments = {"root": str(write_modelnet(tmp_path)), "resolution": 16, "val_fraction": 0.34}
    hollow, solid = (ModelNetVoxelsDataModule(fill=fill, **arguments) for fill in (False, True))
    hollow.setup("test")
    with pytest.warns(UserWarning, match=r"fill: 1 of 2 meshes are not closed.*square_0000.off"):
        solid.setup("test")
    labels = solid.splits["test"].fields["labels"]
    surface, filled = (m.splits["test"].fields["voxels"] for m in (hollow, solid))
    assert torch.equal(filled[labels == 0], surface[labels == 0])  # the open square
    tetra_surface, tetra_filled = surface[labels == 1][0], filled[labels == 1][0]
    assert (tetra_filled >= tetra_surface).all() and tetra_filled.sum() > tetra_surface.sum()
    # the solid corner tetrahedron x, y, z >= -1, x + y + z <= -1 holds the cell centred there
    assert tetra_filled[2, 2, 2] and not tetra_surface[2, 2, 2]


def test_voxel_size_keeps_one_point_per_voxel_padded_by_repeats(tmp_path):
    arguments = {"root": str(write_modelnet(tmp_path)), "num_points": 256, "val_fraction": 0.34}
    plain, thinned = (
        ModelNetDataModule(**arguments),
        ModelNetDataModule(voxel_size=0.5, **arguments),
    )
    plain.setup("test")
    thinned.setup("test")
    assert "lengths" not in plain.splits["test"].fields
    batch = next(iter(thinned.test_dataloader()))
    assert batch.points.shape == (2, 256, 3) and (batch.lengths < 256).all()
    # the square, normalized, spans [-0.71, 0.71]^2; the grid starts half a voxel below: 4 x 4
    assert batch.lengths[batch.labels == 0].item() == 16
    for cloud, kept, length in zip(
        plain.splits["test"].fields["points"], batch.points, batch.lengths
    ):
        expected = voxel_downsample(cloud.numpy(), 0.5).points
        torch.testing.assert_close(kept[:length], torch.from_numpy(expected))
        torch.testing.assert_close(kept, kept[torch.arange(256) % length])


def test_voxel_size_is_checked_and_refused_by_the_voxel_grids(tmp_path):
    with pytest.raises(SpecError, match="voxel_size: must be > 0 or null"):
        ModelNetDataModule(root=str(tmp_path), voxel_size=0)
    datamodule = ModelNetVoxelsDataModule(root=str(write_modelnet(tmp_path)), voxel_size=0.1)
    with pytest.raises(SpecError, match="voxel_size: modelnet_voxels has no points"):
        datamodule.setup("test")
