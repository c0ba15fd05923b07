"""ModelNet10/40 as point clouds (OFF meshes sampled into ``num_points`` surface points,
``modelnet_points``) or as voxel grids (``modelnet_voxels``: surface cells, solid with ``fill``
where a mesh is closed).

Layout (as the Princeton archives unpack)::

    <root>/<class>/train/<class>_0001.off
    <root>/<class>/test/<class>_0001.off

Every mesh is read (:func:`visionflow.datamodules.mesh_io.read_mesh`: ModelNet's glued
``OFF490 518 0`` headers included), sampled area-weighted with a seed fixed per file and split,
centred and scaled into the unit ball, once per ``setup``; ``val`` holds out ``val_fraction`` of
train, stratified by class. ``voxel_size`` (unit-ball units; ``modelnet_points`` only) then
replaces each cloud by the means of its occupied voxels (an even density, fewer points), padded
back to ``num_points`` by repeating them, the count in the batch's ``lengths``. A class folder without meshes, or a root without class folders,
raises a DataError naming the folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from visionflow.batches import PointCloudBatch, PointCloudDatasetInfo, VoxelBatch, VoxelDatasetInfo
from visionflow.datamodules.base import holdout_split, mix_seed
from visionflow.datamodules.mesh_collection import folder_of_data, warn_open_meshes
from visionflow.datamodules.mesh_io import read_mesh
from visionflow.datamodules.pointcloud_data import (
    NO_TRANSFORMS,
    PointCloudDataModule,
    checked_voxel_size,
    downsample_points_field,
)
from visionflow.datamodules.transforms.pointcloud import Normalize
from visionflow.errors import DataError, SpecError
from visionflow.ops import open_edge_count, sample_points_from_mesh, voxelize_mesh
from visionflow.registry import DATAMODULES


@DATAMODULES.register("modelnet_points", batch=PointCloudBatch)
class ModelNetDataModule(PointCloudDataModule):
    """ModelNet meshes as labelled point clouds ``[B, num_points, 3]`` (see the module docstring)."""

    def __init__(
        self,
        root: str = "data/ModelNet10",
        num_points: int = 1024,
        resolution: int = 32,
        fill: bool = False,
        val_fraction: float = 0.1,
        voxel_size: float | None = None,
        **loader: Any,
    ):
        super().__init__(**loader)
        if num_points < 1:
            raise SpecError(f"num_points: must be >= 1, got {num_points}")
        if resolution < 1:
            raise SpecError(f"resolution: must be >= 1, got {resolution}")
        if not 0 <= val_fraction < 1:
            raise SpecError(f"val_fraction: must be in [0, 1), got {val_fraction}")
        self.root, self.num_points, self.val_fraction = Path(root), num_points, val_fraction
        self.voxel_size = checked_voxel_size(voxel_size)
        self.resolution, self.fill = resolution, fill  # the grids of modelnet_voxels

    @property
    def class_names(self) -> tuple[str, ...]:
        hint = "root must hold one folder per class, each with train/ and test/"
        folders = folder_of_data(self.root, hint).iterdir()
        names = tuple(sorted(p.name for p in folders if (p / "train").is_dir()))
        if not names:
            raise DataError(f"{self.root}: no class folder with a train/ subfolder")
        return names

    @property
    def info(self) -> PointCloudDatasetInfo:
        names = self.class_names
        return PointCloudDatasetInfo(
            num_classes=len(names), class_names=names, in_channels=3, num_points=self.num_points
        )

    def setup(self, stage: str | None = None) -> None:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        train, test = self.read_split("train"), self.read_split("test")
        kept, held = holdout_split(train["labels"].numpy(), self.val_fraction, self.seed)
        splits = {
            "train": {k: v[kept] for k, v in train.items()},
            "val": {k: v[held] for k, v in train.items()},
            "test": test,
        }
        for split, fields in splits.items():
            self.hold_split(split, fields, rank)

    def make_batch(self, fields, transform, generator) -> PointCloudBatch:
        return PointCloudBatch(
            points=transform(fields["points"], generator),
            labels=fields["labels"],
            lengths=fields.get("lengths"),
        )

    def read_split(self, split: str) -> dict[str, torch.Tensor]:
        """``{"points": [N, P, 3], "labels": [N]}`` of every mesh of ``split``, and
        ``"lengths": [N]`` with ``voxel_size`` (module docstring)."""
        clouds, labels = self.read_meshes(split, self.sample)
        points = Normalize()(torch.stack(clouds), torch.Generator())
        return downsample_points_field({"points": points, "labels": labels}, self.voxel_size)

    def read_meshes(
        self, split: str, encode: Callable[[Path, int], torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``encode(path, seed)`` of every mesh of ``split`` (seed fixed per file), and the
        labels ``[N]``."""
        clouds, labels = [], []
        for label, name in enumerate(self.class_names):
            files = sorted((self.root / name / split).glob("*.off"))
            if not files:
                raise DataError(f"{self.root / name / split}: no .off meshes")
            for index, path in enumerate(files):
                clouds.append(encode(path, mix_seed(self.seed, label, index, split == "test")))
                labels.append(label)
        return clouds, torch.tensor(labels, dtype=torch.int64)

    def sample(self, path: Path, seed: int) -> torch.Tensor:
        verts, faces = read_mesh(path)
        try:
            points, _ = sample_points_from_mesh(
                torch.from_numpy(verts),
                torch.from_numpy(faces),
                self.num_points,
                torch.Generator().manual_seed(seed),
            )
        except ValueError as error:
            raise DataError(f"{path}: {error}") from None
        return points


@DATAMODULES.register("modelnet_voxels", batch=VoxelBatch)
class ModelNetVoxelsDataModule(ModelNetDataModule):
    """ModelNet meshes as voxel grids ``[B, 1, R, R, R]`` labelled by class, for
    ``voxel_classification``: each mesh centred on its bounding box and scaled so that its
    longest side spans ``[-1, 1]``, then the cells its triangles meet
    (:func:`visionflow.ops.voxelize_mesh`). With ``fill``, the cells inside are added where the
    mesh is closed (:func:`visionflow.ops.open_edge_count` is 0: the inside test by ray parity
    holds); many of ModelNet's meshes are not, so those keep their surface cells only and one
    warning per split counts them and names one. ``num_points`` is not used, ``voxel_size`` is
    refused; grids are not augmented."""

    default_transforms = NO_TRANSFORMS
    open_meshes: list[Path]

    @property
    def info(self) -> VoxelDatasetInfo:
        names = self.class_names
        return VoxelDatasetInfo(
            num_classes=len(names), class_names=names, in_channels=1, resolution=self.resolution
        )

    def read_split(self, split: str) -> dict[str, torch.Tensor]:
        """``{"voxels": bool [N, R, R, R], "labels": [N]}`` of every mesh of ``split``."""
        self.refuse_transforms()
        if self.voxel_size is not None:
            raise SpecError(
                "voxel_size: modelnet_voxels has no points to downsample",
                hint="leave voxel_size unset (resolution sets the grid)",
            )
        self.open_meshes = []
        grids, labels = self.read_meshes(split, self.voxelize)
        if self.fill:
            warn_open_meshes(self.open_meshes, len(grids))
        return {"voxels": torch.stack(grids), "labels": labels}

    def voxelize(self, path: Path, seed: int) -> torch.Tensor:
        verts, faces = (torch.from_numpy(array) for array in read_mesh(path))
        verts = verts.double()
        low, high = verts.amin(0), verts.amax(0)
        verts = (verts - (low + high) / 2) / ((high - low).max() / 2)
        fill = self.fill and open_edge_count(verts, faces) == 0
        if self.fill and not fill:
            self.open_meshes.append(path)
        return voxelize_mesh(verts, faces, self.resolution, fill=fill)

    def make_batch(self, fields, transform, generator) -> VoxelBatch:
        return VoxelBatch(voxels=fields["voxels"][:, None].float(), labels=fields["labels"])
