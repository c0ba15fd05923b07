"""What the 3D datamodules share: splits held as tensors and served a whole batch at a time.

:class:`TensorBatches` answers ``__getitems__(indices)`` with a ready batch (one indexing per
field, no Python call per sample), as ``tensor_data.TensorClassificationDataset`` does for
images; point-cloud augmentation (:mod:`visionflow.datamodules.transforms.pointcloud`) runs on
the batch with a generator seeded per ``(seed, rank, epoch, worker)``. The datamodules with a
``voxel_size`` option thin their clouds once on ``setup`` (:func:`downsample_points_field`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from visionflow.datamodules.base import (
    EpochSeeding,
    EpochShuffleSampler,
    VisionDataModule,
    keep_batch,
)
from visionflow.datamodules.transforms import PHASES, resolve_transforms
from visionflow.datamodules.transforms.pointcloud import (
    PointCloudCompose,
    build_pointcloud_transform,
)
from visionflow.errors import SpecError
from visionflow.mesh_files import voxel_downsample

DEFAULT_TRANSFORMS = {"train": "pointcloud_train", "eval": "pointcloud_none"}
NO_TRANSFORMS = {"train": "pointcloud_none", "eval": "pointcloud_none"}


class TensorBatches(Dataset):
    """One split: ``fields`` name -> tensor ``[N, ...]``; ``make_batch(fields at indices,
    generator)`` builds the batch."""

    def __init__(
        self,
        fields: dict[str, torch.Tensor],
        make_batch: Callable[[dict[str, torch.Tensor], torch.Generator], Any],
        seed: int = 0,
        rank: int = 0,
    ):
        self.fields = fields
        self.make_batch = make_batch
        self.seeding = EpochSeeding(seed, rank)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    def set_epoch(self, epoch: int) -> None:
        self.seeding.set_epoch(epoch)

    def __getitems__(self, indices: list[int]) -> Any:
        if (seed := self.seeding.new_seed()) is not None:
            self.generator.manual_seed(seed)
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.make_batch({k: v[index] for k, v in self.fields.items()}, self.generator)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])


class PointCloudDataModule(VisionDataModule):
    """Base of the 3D datamodules: batch size, workers, seed, and the point-cloud ``transforms``
    per phase (``train`` / ``eval``); subclasses fill ``self.splits`` with :class:`TensorBatches`
    and forward these loader arguments (``**loader``; the spec checker reads them here)."""

    #: the presets used for the phases that the ``transforms`` argument leaves out
    default_transforms: dict[str, Any] = DEFAULT_TRANSFORMS

    def __init__(
        self,
        *,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        transforms: dict[str, Any] | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise SpecError(f"batch_size: must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise SpecError(f"num_workers: must be >= 0, got {num_workers}")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.transform_specs = resolve_transforms(transforms, self.default_transforms)
        self.pipelines: dict[str, PointCloudCompose] = {
            phase: build_pointcloud_transform(self.transform_specs[phase], f"transforms.{phase}")
            for phase in PHASES
        }
        self.splits: dict[str, TensorBatches] = {}

    def transform_summary(self) -> dict[str, Any]:
        return {phase: self.pipelines[phase].describe() for phase in PHASES}

    def refuse_transforms(self) -> None:
        """SpecError when ``transforms`` asks for augmentation of data that is not points
        (voxel grids): the point-cloud ops would not apply."""
        if any(pipeline.ops for pipeline in self.pipelines.values()):
            raise SpecError(
                "transforms: voxel grids are not augmented by point-cloud transforms",
                hint="leave transforms unset for the voxel datamodules",
            )

    def pipeline(self, split: str) -> PointCloudCompose:
        return self.pipelines["train" if split == "train" else "eval"]

    def hold_split(self, split: str, fields: dict[str, torch.Tensor], rank: int) -> None:
        """Serve ``fields`` (name -> ``[N, ...]``) as ``split``: batches built by
        ``self.make_batch(fields at the indices, split's transform, generator)``."""
        transform = self.pipeline(split)
        self.splits[split] = TensorBatches(
            fields,
            lambda chosen, generator: self.make_batch(chosen, transform, generator),
            seed=self.seed,
            rank=rank,
        )

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            self.setup(None)
        dataset = self.splits[split]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(dataset, self.seed) if shuffle else None,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


def checked_voxel_size(voxel_size: float | None) -> float | None:
    """``voxel_size`` (None: no downsampling), or a SpecError naming it when it is not > 0."""
    if voxel_size is not None and not voxel_size > 0:
        raise SpecError(f"voxel_size: must be > 0 or null (no downsampling), got {voxel_size}")
    return voxel_size


def downsample_points_field(
    fields: dict[str, torch.Tensor], voxel_size: float | None
) -> dict[str, torch.Tensor]:
    """``fields`` with each cloud of ``points [N, P, 3]`` reduced to the means of its occupied
    voxels (M <= P; :func:`visionflow.mesh_files.voxel_downsample`), padded back to P points by
    repeating them in order (so ops and nets that ignore ``lengths`` see the same cloud), and
    ``lengths`` int64 ``[N]`` (each M) added; unchanged when ``voxel_size`` is None."""
    if voxel_size is None:
        return fields
    clouds, lengths = [], []
    for cloud in fields["points"]:
        kept = torch.from_numpy(voxel_downsample(cloud.numpy(), voxel_size).points)
        clouds.append(kept[torch.arange(len(cloud)) % len(kept)])
        lengths.append(len(kept))
    return {**fields, "points": torch.stack(clouds), "lengths": torch.tensor(lengths)}
