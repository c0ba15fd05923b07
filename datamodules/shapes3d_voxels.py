"""Shapes3D as voxel grids: each primitive's closed mesh voxelized solid (surface cells plus the
cells whose centre is inside, :func:`visionflow.ops.voxelize_mesh`) over ``[-1, 1]^3`` at
``resolution`` cells per side, in the camera frame of its view.

    shapes3d_voxels        VoxelBatch(voxels [B, 1, R, R, R], labels [B])       voxel_classification
    shapes3d_view_voxels   ImageToVoxelBatch(images [B, 3, S, S], voxels [B, R, R, R])  image_to_voxel

The grids are computed from the meshes stored in each split's ``samples.npz`` on
``prepare_data`` and cached beside it as ``voxels_<R>.npy`` (bit-packed); rewriting the split
deletes the cache. Grids are not augmented (the point-cloud ``transforms`` do not apply).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from visionflow.batches import ImageToVoxelBatch, VoxelBatch, VoxelDatasetInfo
from visionflow.datamodules.pointcloud_data import NO_TRANSFORMS
from visionflow.datamodules.shapes3d import (
    SPLITS,
    Shapes3DDataModule,
    normalized_images,
    read_split,
)
from visionflow.datamodules.shapes3d_render import PRIMITIVES
from visionflow.errors import DataError
from visionflow.ops import voxelize_mesh
from visionflow.registry import DATAMODULES


def split_meshes(arrays: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The meshes ``(verts [V, 3], faces [F, 3])`` of a split, from its ragged mesh arrays."""
    if "mesh_sizes" not in arrays:
        raise DataError(
            "samples.npz: written by an older Shapes3D without its meshes",
            hint="delete the split's folder; prepare_data writes it again",
        )
    ends = arrays["mesh_sizes"].cumsum(0)
    starts = ends - arrays["mesh_sizes"]
    return [
        (arrays["mesh_verts"][v0:v1], arrays["mesh_faces"][f0:f1])
        for (v0, f0), (v1, f1) in zip(starts, ends)
    ]


def meshes_of(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        return split_meshes(read_split(folder))
    except DataError as error:
        raise DataError(f"{folder}/{error}", hint=error.hint) from None


def voxel_grids(folder: Path, resolution: int) -> torch.Tensor:
    """bool ``[N, R, R, R]``: the split's meshes voxelized solid, from the cache when present."""
    cache = folder / f"voxels_{resolution}.npy"
    shape = (-1, resolution, resolution, resolution)
    if cache.is_file():
        packed = np.load(cache)
    else:
        grids = [
            voxelize_mesh(torch.from_numpy(verts), torch.from_numpy(faces), resolution).numpy()
            for verts, faces in meshes_of(folder)
        ]
        packed = np.packbits(np.stack(grids).reshape(len(grids), -1), axis=1)
        temporary = folder / f"voxels_{resolution}.tmp.npy"
        np.save(temporary, packed)
        temporary.replace(cache)
    count = resolution**3
    return torch.from_numpy(np.unpackbits(packed, axis=1, count=count).astype(bool)).view(shape)


class Shapes3DVoxelData(Shapes3DDataModule):
    """Shapes3D splits plus their voxel grids (field ``voxels``); subclasses build batches."""

    default_transforms = NO_TRANSFORMS

    @property
    def info(self) -> VoxelDatasetInfo:
        return VoxelDatasetInfo(
            num_classes=len(PRIMITIVES),
            class_names=PRIMITIVES,
            in_channels=self.in_channels,
            image_size=self.provided_image_size,
            resolution=self.resolution,
        )

    def prepare_data(self) -> None:
        super().prepare_data()
        for split in SPLITS:
            self.derived_fields(self.root / split)

    def derived_fields(self, folder: Path) -> dict[str, torch.Tensor]:
        self.refuse_transforms()
        return {"voxels": voxel_grids(folder, self.resolution)}


@DATAMODULES.register("shapes3d_voxels", batch=VoxelBatch)
class Shapes3DVoxelsDataModule(Shapes3DVoxelData):
    """Shapes3D solid voxel grids ``[B, 1, R, R, R]`` labelled by primitive."""

    in_channels = 1

    def make_batch(self, fields, transform, generator) -> VoxelBatch:
        return VoxelBatch(voxels=fields["voxels"][:, None].float(), labels=fields["labels"])


@DATAMODULES.register("shapes3d_view_voxels", batch=ImageToVoxelBatch)
class Shapes3DViewVoxelsDataModule(Shapes3DVoxelData):
    """Shapes3D rendered views ``[B, 3, S, S]`` with the solid grids ``[B, R, R, R]`` they show."""

    @property
    def provided_image_size(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    def make_batch(self, fields, transform, generator) -> ImageToVoxelBatch:
        return ImageToVoxelBatch(
            images=normalized_images(fields),
            voxels=fields["voxels"].float(),
            labels=fields["labels"],
        )
