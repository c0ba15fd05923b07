"""ModelNet10/40 as point clouds: OFF meshes sampled into ``num_points`` surface points.

Layout (as the Princeton archives unpack)::

    <root>/<class>/train/<class>_0001.off
    <root>/<class>/test/<class>_0001.off

Every mesh is read (:func:`visionflow.datamodules.mesh_io.read_mesh`: ModelNet's glued
``OFF490 518 0`` headers included), sampled area-weighted with a seed fixed per file and split,
centred and scaled into the unit ball, once per ``setup``; ``val`` holds out ``val_fraction`` of
train, stratified by class. A class folder without meshes, or a root without class folders,
raises a DataError naming the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visionflow.batches import PointCloudBatch, PointCloudDatasetInfo
from visionflow.datamodules.base import holdout_split, mix_seed
from visionflow.datamodules.mesh_io import read_mesh
from visionflow.datamodules.pointcloud_data import PointCloudDataModule, TensorBatches
from visionflow.datamodules.transforms.pointcloud import Normalize
from visionflow.errors import DataError, SpecError
from visionflow.ops import sample_points_from_mesh
from visionflow.registry import DATAMODULES


@DATAMODULES.register("modelnet_points", batch=PointCloudBatch)
class ModelNetDataModule(PointCloudDataModule):
    """ModelNet meshes as labelled point clouds ``[B, num_points, 3]`` (see the module docstring)."""

    def __init__(
        self,
        root: str = "data/ModelNet10",
        num_points: int = 1024,
        val_fraction: float = 0.1,
        **loader: Any,
    ):
        super().__init__(**loader)
        if num_points < 1:
            raise SpecError(f"num_points: must be >= 1, got {num_points}")
        if not 0 <= val_fraction < 1:
            raise SpecError(f"val_fraction: must be in [0, 1), got {val_fraction}")
        self.root, self.num_points, self.val_fraction = Path(root), num_points, val_fraction

    @property
    def class_names(self) -> tuple[str, ...]:
        if not self.root.is_dir():
            raise DataError(
                f"{self.root}: no such folder",
                hint="root must hold one folder per class, each with train/ and test/",
            )
        names = tuple(sorted(p.name for p in self.root.iterdir() if (p / "train").is_dir()))
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
            transform = self.pipeline(split)
            self.splits[split] = TensorBatches(
                fields,
                lambda f, generator, t=transform: PointCloudBatch(
                    points=t(f["points"], generator), labels=f["labels"]
                ),
                seed=self.seed,
                rank=rank,
            )

    def read_split(self, split: str) -> dict[str, torch.Tensor]:
        """``{"points": [N, P, 3], "labels": [N]}`` of every mesh of ``split``."""
        clouds, labels = [], []
        for label, name in enumerate(self.class_names):
            files = sorted((self.root / name / split).glob("*.off"))
            if not files:
                raise DataError(f"{self.root / name / split}: no .off meshes")
            for index, path in enumerate(files):
                clouds.append(self.sample(path, mix_seed(self.seed, label, index, split == "test")))
                labels.append(label)
        points = Normalize()(torch.stack(clouds), torch.Generator())
        return {"points": points, "labels": torch.tensor(labels, dtype=torch.int64)}

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
