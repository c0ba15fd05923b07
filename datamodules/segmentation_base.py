"""The base of the semantic segmentation datamodules: records, the per-item dataset, loaders.

A source module only lists, per split, :class:`SegmentationRecord` s (an image and where its
label map comes from) and names its classes; :class:`SegmentationDataModule` does the rest: the
mask-aware pipelines (``segmentation_train`` / ``segmentation_eval``), one
:class:`SegmentationDataset` per split, collation into ``SegmentationBatch`` (images float32
``[B, 3, H, W]`` normalized, masks int64 ``[B, H, W]`` with ``IGNORE_INDEX``) and the ``info``.

Bad data is a ``DataError`` naming the file: a missing mask, a mask whose size differs from its
image, a label outside ``0..num_classes-1`` that is not ``IGNORE_INDEX``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from visionflow.batches import IGNORE_INDEX, DatasetInfo, SegmentationBatch
from visionflow.datamodules.base import (
    EpochSeeding,
    EpochShuffleSampler,
    VisionDataModule,
    split_records,
)
from visionflow.datamodules.detection_samples import decode_image
from visionflow.datamodules.splits import DatasetsBySplit
from visionflow.errors import DataError, SpecError

DEFAULT_TRANSFORMS = {"train": "segmentation_train", "eval": "segmentation_eval"}
MAX_CLASSES = IGNORE_INDEX  # masks travel as uint8 through the pipelines: 0..254 + ignore


@dataclass(frozen=True)
class SegmentationRecord:
    """One image and its label map; subclasses say where the map comes from (:meth:`read_mask`)."""

    image_path: Path
    source: str
    size = None  # (H, W) as the files state it; unknown here (decode_image reads it)

    def where(self) -> str:
        return f"{self.source} ({self.image_path.name})"

    def read_mask(self, height: int, width: int) -> np.ndarray:
        """Labels uint8 [H, W] (``IGNORE_INDEX`` where unlabelled) for an image of that size."""
        raise NotImplementedError


@dataclass(frozen=True)
class PngMaskRecord(SegmentationRecord):
    """A label map stored as a PNG: grey values or palette indices are the labels (VOC, folders)."""

    mask_path: Path

    def read_mask(self, height: int, width: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.mask_path) as image:
                if image.mode not in ("P", "L", "I", "I;16"):
                    raise DataError(
                        f"{self.mask_path}: a mask holds one label per pixel (grey "
                        f"or palette PNG), this one is {image.mode}",
                        hint="save class indices as a mode L or P PNG",
                    )
                labels = np.asarray(image)
        except FileNotFoundError:
            raise DataError(
                f"{self.mask_path}: mask file is missing (image {self.image_path})",
                hint="every image needs a PNG mask of the same name",
            ) from None
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{self.mask_path}: cannot decode the mask: {error}") from None
        if labels.max(initial=0) > IGNORE_INDEX:
            raise DataError(
                f"{self.mask_path}: label {int(labels.max())} is above "
                f"{IGNORE_INDEX} (the ignore index)"
            )
        return labels.astype(np.uint8)


class SegmentationDataset(Dataset):
    """Decodes, checks and transforms one record per item: ``(image [C, H, W], mask [H, W])``.
    Augmentation is seeded from ``(seed, rank, epoch, worker)`` (see ``EpochSeeding``)."""

    def __init__(
        self,
        records: list[SegmentationRecord],
        transform: Any,
        seeding: EpochSeeding,
        num_classes: int,
    ):
        self.records = records
        self.transform = transform
        self.seeding = seeding
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        seed = self.seeding.new_seed()
        if seed is not None:
            self.transform.set_random_seed(seed)
        record = self.records[index]
        pixels = decode_image(record)  # uint8 [H, W, 3]
        mask = record.read_mask(*pixels.shape[:2])  # uint8 [H, W]
        check_mask(record, mask, pixels.shape[:2], self.num_classes)
        out = self.transform(image=pixels, mask=mask)
        image = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        return image.float(), torch.from_numpy(np.asarray(out["mask"], dtype=np.int64))

    def set_epoch(self, epoch: int) -> None:
        self.seeding.set_epoch(epoch)


def check_mask(
    record: SegmentationRecord, mask: np.ndarray, size: tuple[int, int], num_classes: int
) -> None:
    """DataError naming the record's mask when its size or labels are wrong."""
    where = getattr(record, "mask_path", None) or record.where()
    if tuple(mask.shape) != tuple(size):
        raise DataError(
            f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{record.image_path} is {size[1]}x{size[0]} (width x height)"
        )
    labels = np.unique(mask)
    bad = labels[(labels >= num_classes) & (labels != IGNORE_INDEX)]
    if len(bad):
        raise DataError(
            f"{where}: label {int(bad[0])} is outside 0..{num_classes - 1} and is "
            f"not the ignore index {IGNORE_INDEX}",
            hint="check num_classes / class_names against the masks",
        )


def collate_segmentation(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> SegmentationBatch:
    return SegmentationBatch(
        images=torch.stack([image for image, _ in samples]),
        masks=torch.stack([mask for _, mask in samples]),
    )


def pair(size: int | list[int] | tuple[int, int] | None, name: str) -> tuple[int, int] | None:
    """``(H, W)`` of an int (square) or ``[H, W]``; SpecError below 16 px."""
    if size is None:
        return None
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if min(height, width) < 16:
        raise SpecError(f"{name}: must be >= 16 px, got {size}")
    return int(height), int(width)


class SegmentationDataModule(DatasetsBySplit, VisionDataModule):
    """Base of the segmentation datamodules; subclasses give :attr:`class_names` and
    :meth:`load_split`. ``image_size``: the training crop ``(H, W)`` (an int for squares);
    ``eval_image_size``: what val/test images are resized to (default ``image_size``). A
    subclass names ``image_size`` with its own default and forwards the other loader arguments
    (``**loader``; the spec checker reads them here). ``dataset_type`` and ``collate`` are what
    a family on the same records (panoptic) replaces."""

    dataset_type: type[SegmentationDataset] = SegmentationDataset
    collate = staticmethod(collate_segmentation)

    def __init__(
        self,
        *,
        image_size: int | list[int],
        eval_image_size: int | list[int] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        transforms: dict[str, Any] | None = None,
        seed: int = 0,
    ):
        from visionflow.datamodules.transforms import build_transform, resolve_transforms
        from visionflow.datamodules.transforms.segmentation import segmentation_context

        super().__init__()
        if batch_size < 1 or num_workers < 0:
            raise SpecError(
                f"batch_size: must be >= 1 (got {batch_size}) and num_workers "
                f">= 0 (got {num_workers})"
            )
        self.image_size = pair(image_size, "image_size")
        self.eval_image_size = pair(eval_image_size, "eval_image_size") or self.image_size
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        specs = resolve_transforms(transforms, DEFAULT_TRANSFORMS)
        sizes = {"train": self.image_size, "eval": self.eval_image_size}
        self.pipelines = {
            phase: build_transform(
                spec, segmentation_context(sizes[phase], seed), f"transforms.{phase}"
            )
            for phase, spec in specs.items()
        }
        self.rank = 0
        self.datasets: dict[str, SegmentationDataset] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def load_split(self, split: str) -> list[SegmentationRecord] | None:
        """The records of ``split`` (train, val, test), or None when it is not configured."""
        raise NotImplementedError

    @property
    def info(self) -> DatasetInfo:
        names = self.class_names
        if len(names) > MAX_CLASSES:
            raise SpecError(f"class_names: at most {MAX_CLASSES} classes, got {len(names)}")
        return DatasetInfo(
            num_classes=len(names),
            class_names=names,
            in_channels=3,
            image_size=self.eval_image_size,
        )

    def transform_summary(self) -> dict[str, Any]:
        from visionflow.datamodules.transforms import describe_transform

        return {phase: describe_transform(pipeline) for phase, pipeline in self.pipelines.items()}

    def _build_dataset(self, split: str) -> SegmentationDataset:
        records = split_records(split, self.load_split)
        pipeline = self.pipelines["train" if split == "train" else "eval"]
        return self.dataset_type(
            records, pipeline, EpochSeeding(self.seed, self.rank), len(self.class_names)
        )

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        dataset = self.datasets[split]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(dataset, self.seed) if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(dataset) > self.batch_size,
        )
