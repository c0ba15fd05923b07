"""Shapes3D voxel datamodules: grids equal the stored meshes voxelized, cached per resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionflow.batches import ImageToOccupancyBatch, ImageToVoxelBatch, VoxelBatch
from visionflow.datamodules import (
    Shapes3DOccupancyDataModule,
    Shapes3DViewVoxelsDataModule,
    Shapes3DVoxelsDataModule,
    make_shapes3d_dataset,
)
from visionflow.datamodules.shapes3d_voxels import split_meshes, voxel_grids
from visionflow.errors import DataError, SpecError
from visionflow.ops import points_inside_mesh, voxelize_mesh

SMALL = {
    "train_samples": 3,
    "val_samples": 2,
    "test_samples": 2,
    "image_size": 32,
    "num_points": 32,
    "resolution": 16,
    "write_files": False,
    "batch_size": 8,
}


def test_grids_are_the_stored_meshes_voxelized_and_cached(tmp_path):
    path = make_shapes3d_dataset(tmp_path, samples=3, seed=1, image_size=32, num_points=16)
    grids = voxel_grids(tmp_path, 12)
    assert grids.shape == (3, 12, 12, 12) and grids.dtype == torch.bool
    with np.load(path) as data:
        meshes = split_meshes({k: data[k] for k in data.files})
    for grid, (verts, faces) in zip(grids, meshes):
        expected = voxelize_mesh(torch.from_numpy(verts), torch.from_numpy(faces), 12)
        assert torch.equal(grid, expected) and grid.any()
    cache = tmp_path / "voxels_12.npy"
    assert cache.is_file()
    np.save(cache, np.zeros_like(np.load(cache)))  # the cache is what is read back
    assert not voxel_grids(tmp_path, 12).any()
    make_shapes3d_dataset(tmp_path, samples=3, seed=2, image_size=32, num_points=16)
    assert not cache.exists()  # a rewritten split drops grids of the old one


def test_a_split_without_meshes_is_refused_by_name(tmp_path):
    path = make_shapes3d_dataset(tmp_path, samples=2, seed=0, image_size=32, num_points=8)
    with np.load(path) as data:
        np.savez(path, **{k: data[k] for k in data.files if not k.startswith("mesh_")})
    with pytest.raises(DataError, match="samples.npz: written by an older Shapes3D"):
        voxel_grids(tmp_path, 8)


def test_batches_of_both_datamodules(tmp_path):
    classify = Shapes3DVoxelsDataModule(data_dir=str(tmp_path), **SMALL)
    classify.prepare_data()
    classify.setup("fit")
    batch = next(iter(classify.train_dataloader()))
    assert isinstance(batch, VoxelBatch) and batch.voxels.shape == (3, 1, 16, 16, 16)
    assert classify.info.resolution == 16 and classify.info.in_channels == 1
    views = Shapes3DViewVoxelsDataModule(data_dir=str(tmp_path), **SMALL)
    views.setup("fit")
    pair = next(iter(views.val_dataloader()))
    assert isinstance(pair, ImageToVoxelBatch)
    assert pair.images.shape == (2, 3, 32, 32) and pair.voxels.shape == (2, 16, 16, 16)
    assert views.info.image_size == (32, 32)
    # the view's silhouette and the grid agree (same frame): a cell's 2x2 pixels all drawn
    # means its column is occupied; an occupied column has a drawn pixel or touches one
    with np.load(tmp_path / "val" / "samples.npz") as data:
        mask = torch.from_numpy(data["masks"][0])  # [32, 32], row 0 at y = +1
    seen = pair.voxels[0].amax(0).flip(0).bool()  # [H, W] with row 0 at y = +1
    blocks = mask.view(16, 2, 16, 2)
    assert (blocks.all(3).all(1) <= seen).all()
    near = torch.nn.functional.max_pool2d(blocks.any(3).any(1)[None].float(), 3, 1, 1)[0]
    assert (seen <= near.bool()).all() and seen.sum() > 10


def test_voxel_datamodules_refuse_point_cloud_transforms(tmp_path):
    datamodule = Shapes3DVoxelsDataModule(
        data_dir=str(tmp_path), transforms={"train": "pointcloud_train"}, **SMALL
    )
    with pytest.raises(SpecError, match="transforms"):
        datamodule.prepare_data()


def test_occupancy_queries_are_labelled_by_the_mesh(tmp_path):
    datamodule = Shapes3DOccupancyDataModule(data_dir=str(tmp_path), **SMALL)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert isinstance(batch, ImageToOccupancyBatch)
    assert batch.queries.shape == (3, 32, 3) and batch.occupancy.shape == (3, 32)
    assert batch.surface.shape == (3, 32, 3) and datamodule.info.image_size == (32, 32)
    with np.load(tmp_path / "train" / "samples.npz") as data:
        arrays = {k: data[k] for k in data.files}
    for index, (verts, faces) in enumerate(split_meshes(arrays)):
        queries = datamodule.splits["train"].fields["queries"][index]
        inside = points_inside_mesh(torch.from_numpy(verts), torch.from_numpy(faces), queries)
        assert torch.equal(datamodule.splits["train"].fields["occupancy"][index], inside.float())
        surface = torch.from_numpy(arrays["points"][index])
        nearest = torch.cdist(queries, surface).amin(1)  # [Q]
        assert nearest[:16].max() < 0.3  # train: the first half sits near the surface
    val = datamodule.splits["val"].fields["queries"]
    assert (val.abs() <= 1).all() and val.std() > 0.4  # uniform in the cube
    assert 0 < datamodule.splits["train"].fields["occupancy"].mean() < 1
