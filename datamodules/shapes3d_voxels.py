"""Shapes3D as volumes: each primitive's closed mesh voxelized solid (surface cells plus the
cells whose centre is inside, :func:`visionflow.ops.voxelize_mesh`) over ``[-1, 1]^3`` at
``resolution`` cells per side, or as query points labelled inside/outside
(:func:`visionflow.ops.points_inside_mesh`), in the camera frame of its view.

    shapes3d_voxels        VoxelBatch(voxels [B, 1, R, R, R], labels [B])       voxel_classification
    shapes3d_view_voxels   ImageToVoxelBatch(images [B, 3, S, S], voxels [B, R, R, R])  image_to_voxel
    shapes3d_occupancy     ImageToOccupancyBatch(images, queries [B, Q, 3], occupancy [B, Q],
                           surface [B, P, 3])                                    image_to_occupancy

Grids and queries are computed from the meshes stored in each split's ``samples.npz`` on
``prepare_data`` and cached beside it (``voxels_<R>.npy`` bit-packed, ``occupancy_<Q>.npz``);
rewriting the split deletes the caches. Nothing is augmented (the point-cloud ``transforms``
do not apply).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from visionflow.batches import (
    DatasetInfo,
    ImageToOccupancyBatch,
    ImageToVoxelBatch,
    VoxelBatch,
    VoxelDatasetInfo,
)
from visionflow.datamodules.pointcloud_data import NO_TRANSFORMS
from visionflow.datamodules.shapes3d import Shapes3DDataModule, read_split
from visionflow.datamodules.view_batches import normalized_images, view_voxels_batch
from visionflow.errors import DataError
from visionflow.ops import points_inside_mesh, voxelize_mesh
from visionflow.registry import DATAMODULES
from visionflow.rundir import atomic_write_arrays


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
        atomic_write_arrays(cache, packed)
    count = resolution**3
    return torch.from_numpy(np.unpackbits(packed, axis=1, count=count).astype(bool)).view(shape)


class Shapes3DVoxelData(Shapes3DDataModule):
    """Shapes3D splits plus their voxel grids (field ``voxels``); subclasses build batches."""

    default_transforms = NO_TRANSFORMS

    info_type, info_fields = VoxelDatasetInfo, ("resolution",)

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
        return view_voxels_batch(fields)


#: standard deviation of the offsets of near-surface query points from the surface
NEAR_SURFACE_NOISE = 0.05


def occupancy_queries(folder: Path, count: int, near_surface: bool, seed: int) -> dict:
    """``{"queries": float32 [N, Q, 3], "occupancy": float32 [N, Q]}`` for the split in
    ``folder``: Q = ``count`` points uniform in ``[-1, 1]^3`` (with ``near_surface``, half of
    them are surface samples offset by N(0, 0.05^2) instead), labelled 1 inside the mesh;
    cached as ``occupancy_<Q>.npz``."""
    cache = folder / f"occupancy_{count}.npz"
    if not cache.is_file():
        arrays = read_split(folder)
        generator = torch.Generator().manual_seed(seed)
        queries, occupancy = [], []
        for surface, (verts, faces) in zip(arrays["points"], meshes_of(folder)):
            points = torch.rand(count, 3, generator=generator) * 2 - 1
            if near_surface:
                near = count // 2
                picked = torch.from_numpy(surface)[
                    torch.randint(len(surface), (near,), generator=generator)
                ]
                offsets = torch.randn(near, 3, generator=generator) * NEAR_SURFACE_NOISE
                points[:near] = (picked + offsets).clamp(-1, 1)
            queries.append(points)
            occupancy.append(
                points_inside_mesh(torch.from_numpy(verts), torch.from_numpy(faces), points)
            )
        atomic_write_arrays(
            cache,
            {"queries": torch.stack(queries).numpy(), "occupancy": torch.stack(occupancy).numpy()},
        )
    with np.load(cache) as data:
        return {
            "queries": torch.from_numpy(data["queries"]),
            "occupancy": torch.from_numpy(data["occupancy"]).float(),
        }


@DATAMODULES.register("shapes3d_occupancy", batch=ImageToOccupancyBatch)
class Shapes3DOccupancyDataModule(Shapes3DDataModule):
    """Shapes3D views ``[B, 3, S, S]`` with ``num_points`` occupancy-labelled query points
    (train: half near the surface; val, test: uniform, so their IoU estimates the volumetric
    IoU) and ``num_points`` surface samples, for ``image_to_occupancy``."""

    default_transforms = NO_TRANSFORMS
    info_type, info_fields = DatasetInfo, ()

    @property
    def provided_image_size(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    def derived_fields(self, folder: Path) -> dict[str, torch.Tensor]:
        self.refuse_transforms()
        seed = self.wanted_info(folder.name)["seed"]
        return occupancy_queries(folder, self.num_points, folder.name == "train", seed)

    def make_batch(self, fields, transform, generator) -> ImageToOccupancyBatch:
        return ImageToOccupancyBatch(
            images=normalized_images(fields),
            queries=fields["queries"],
            occupancy=fields["occupancy"],
            surface=fields["points"],
            labels=fields["labels"],
        )
