"""The base of the detection datamodules: splits, label maps across splits, pipelines, loaders.

A source module (COCO, VOC, YOLO) only turns its files into a :class:`LabelMap` and, per split,
a list of :class:`DetectionRecord`; :class:`DetectionDataModule` does the rest: the bbox-aware
pipelines, one :class:`DetectionDataset` per split (decoding, transform and target conversion
per sample in DataLoader workers, see :mod:`visionflow.datamodules.detection_samples`),
collation into ``DetectionBatch`` (images float32 ``[C, H, W]`` in ``[0, 1]``, boxes XYXY in
pixels), the dataloaders and the ``DatasetInfo``.

Conventions every source follows:

- labels are contiguous ``0..K-1`` in the order of :attr:`LabelMap.category_ids`; the map turns
  them back into the dataset's own category ids (COCO results files need those);
- crowd regions (COCO ``iscrowd``, VOC ``difficult``) are kept with ``iscrowd=True``: the evaluator
  ignores detections on them and the task does not train on them as positives;
- boxes of zero width or height are dropped when read (nothing can learn from them); negative
  sizes are a ``DataError`` naming the file, the image id and the annotation id;
- the train split drops images without a (non-crowd) annotation when ``drop_empty_images``;
  evaluation splits keep every image, so false positives on empty images count;
- without a test split, test and predict read the val split.
"""

from __future__ import annotations

import warnings
from functools import cached_property, partial
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from visionflow.batches import DetectionBatch, DetectionDatasetInfo
from visionflow.datamodules.base import (
    EpochSeeding,
    EpochShuffleSampler,
    VisionDataModule,
    split_records,
)

# re-exported: the sources and their tests import these from here
from visionflow.datamodules.detection_samples import (  # noqa: F401
    DetectionDataset,
    DetectionRecord,
    LabelMap,
    collate_detection,
    decode_image,
    decode_masks,
    make_target,
    to_rle,
)
from visionflow.datamodules.splits import DatasetsBySplit
from visionflow.errors import DataError, SpecError

EVAL_SPLITS = ("val", "test")
DEFAULT_TRANSFORMS = {"train": "detection_train", "eval": "detection_eval"}


class DetectionDataModule(DatasetsBySplit, VisionDataModule):
    """Base of the detection datamodules; subclasses implement :meth:`load_split`.

    ``image_size``: letterbox every image to a square of this side (``None``: keep each image's
    size; the detector resizes internally, and predictions stay in original image coordinates).
    ``transforms``: ``{train: preset or list, eval: ...}`` (defaults ``detection_train`` and
    ``detection_eval``); images come out in ``[0, 1]``, since detectors normalize internally.
    A subclass passes whether its source reads ``masks`` and ``keypoints``, and forwards the
    loader arguments (``**loader``; the spec checker reads them here).
    ``batch_type``: what the loaders yield; the target fields it promises (``InstanceBatch``:
    masks) are read whatever ``masks``/``keypoints`` say.
    """

    batch_type: ClassVar[type[DetectionBatch]] = DetectionBatch

    def __init__(
        self,
        masks: bool,
        keypoints: bool,
        /,
        *,
        image_size: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        transforms: dict[str, Any] | None = None,
        drop_empty_images: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        check_loader_args(image_size, batch_size, num_workers)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.masks = masks or "masks" in self.batch_type.target_fields
        self.keypoints = keypoints or self.keypoints_promised
        self.pipelines = build_pipelines(transforms, image_size, seed)
        self.drop_empty_images = drop_empty_images
        self.seed = seed
        self.pin_memory = torch.cuda.is_available()
        self.rank = 0
        self._splits: dict[str, tuple[list[DetectionRecord], LabelMap] | None] = {}
        self.datasets: dict[str, DetectionDataset] = {}

    # ------------------------------------------------------------------ what a source implements

    def load_split(self, split: str) -> tuple[list[DetectionRecord], LabelMap] | None:
        """``(records, label map)`` of ``split`` ("train", "val", "test"); None if not configured."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ label maps

    @cached_property
    def label_map(self) -> LabelMap:
        """The label map of the first configured split; every other split must agree."""
        for split in ("train", *EVAL_SPLITS):
            loaded = self._load(split)
            if loaded is not None:
                return loaded[1]
        raise SpecError("no split is configured", hint="give at least one split's files")

    @property
    def info(self) -> DetectionDatasetInfo:
        """The batch type's info (``KeypointBatch``: with the data's keypoint names)."""
        size = None if self.image_size is None else (self.image_size, self.image_size)
        extra = {"keypoint_names": self.keypoint_names()} if self.keypoints_promised else {}
        return self.batch_type.info_type(
            num_classes=len(self.label_map),
            class_names=self.label_map.names,
            in_channels=3,
            image_size=size,
            category_ids=self.label_map.category_ids,
            **extra,
        )

    @property
    def keypoints_promised(self) -> bool:
        return "keypoints" in self.batch_type.target_fields

    def keypoint_names(self) -> tuple[str, ...]:
        """The keypoint names of the categories that name theirs (the files hold K per object)."""
        named = {names for names in self.label_map.keypoint_names if names}
        if len(named) != 1:
            raise DataError(
                f"a pose task needs one list of keypoint names, the categories give {len(named)}",
                hint='name them in the categories: "keypoints": ["nose", "left_eye", ...]',
            )
        return named.pop()

    def records(self, split: str) -> list[DetectionRecord] | None:
        loaded = self._load(split)
        if loaded is None:
            return None
        records, label_map = loaded
        if label_map != self.label_map:
            raise DataError(
                f"the {split} split's categories differ from the other splits': "
                f"{label_map.names} vs {self.label_map.names}"
            )
        if split == "train" and self.drop_empty_images:
            records = [r for r in records if r.has_objects]
        return records

    def _load(self, split: str) -> tuple[list[DetectionRecord], LabelMap] | None:
        if split not in self._splits:
            self._splits[split] = self.load_split(split)
        return self._splits[split]

    # ------------------------------------------------------------------------- Lightning hooks

    def _build_dataset(self, split: str) -> DetectionDataset:
        records = split_records(split, self.records)
        pipeline = self.pipelines["train" if split == "train" else "eval"]
        return DetectionDataset(
            records,
            pipeline,
            EpochSeeding(self.seed, self.rank),
            self.masks,
            self.keypoints,
            self.label_map.keypoint_names,
        )

    def transform_summary(self) -> dict[str, Any]:
        """The pipelines as plain data (``albumentations.from_dict`` rebuilds them)."""
        from visionflow.datamodules.transforms import describe_transform

        return {phase: describe_transform(pipeline) for phase, pipeline in self.pipelines.items()}

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        dataset = self.datasets[split]
        # a last training batch of one image breaks batch norm on 1x1 maps (SSD heads): drop it
        drop_last = shuffle and len(dataset) > self.batch_size
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(dataset, self.seed) if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=partial(collate_detection, batch_type=self.batch_type),
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=drop_last,
        )


def build_pipelines(
    transforms: dict[str, Any] | None, image_size: int | None, seed: int
) -> dict[str, Any]:
    """``{"train": Compose, "eval": Compose}``, bbox- and mask-aware; a bad spec fails here."""
    from visionflow.datamodules.transforms import build_transform, resolve_transforms
    from visionflow.datamodules.transforms.detection import detection_context

    specs = resolve_transforms(transforms, DEFAULT_TRANSFORMS)
    context = detection_context(image_size, seed=seed)
    with warnings.catch_warnings():  # eval pipelines without a geometric step are fine
        warnings.filterwarnings("ignore", message="Got processor for")
        return {
            phase: build_transform(spec, context, f"transforms.{phase}")
            for phase, spec in specs.items()
        }


def check_loader_args(image_size: int | None, batch_size: int, num_workers: int) -> None:
    if image_size is not None and image_size < 16:
        raise SpecError(f"image_size: must be >= 16 or null, got {image_size}")
    if batch_size < 1:
        raise SpecError(f"batch_size: must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise SpecError(f"num_workers: must be >= 0, got {num_workers}")
