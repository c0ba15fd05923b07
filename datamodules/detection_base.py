"""Shared machinery of the detection datamodules: records, label maps, decoding, collation.

A source module (COCO, VOC, YOLO) only turns its files into a :class:`LabelMap` and, per split,
a list of :class:`DetectionRecord`; :class:`DetectionDataModule` does the rest: decoding images
and masks per sample in DataLoader workers, the bbox-aware transforms, collation into
``DetectionBatch`` (images float32 ``[C, H, W]`` in ``[0, 1]``, boxes XYXY in pixels), the
dataloaders and the ``DatasetInfo``.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from visionflow.batches import DatasetInfo, DetectionBatch, DetectionTarget
from visionflow.datamodules.base import EpochSeeding, EpochShuffleSampler
from visionflow.errors import DataError, SpecError

EVAL_SPLITS = ("val", "test")
DEFAULT_TRANSFORMS = {"train": "detection_train", "eval": "detection_eval"}


@dataclass(frozen=True)
class LabelMap:
    """Dataset category ids <-> contiguous labels ``0..K-1`` (label ``i`` is ``category_ids[i]``)."""

    category_ids: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def from_categories(cls, categories: Iterable[Mapping[str, Any]], source: str) -> LabelMap:
        """From COCO ``categories`` (``{id, name}`` objects), in ascending id order."""
        pairs = []
        for index, category in enumerate(categories):
            if not isinstance(category, Mapping) or not isinstance(category.get("id"), int):
                raise DataError(f"{source}: category #{index} has no integer 'id'",
                                hint="categories are [{id: int, name: str}, ...]")
            pairs.append((category["id"], str(category.get("name", category["id"]))))
        ids = [i for i, _ in pairs]
        if len(set(ids)) != len(ids):
            raise DataError(f"{source}: category ids repeat: {sorted(ids)}")
        if not pairs:
            raise DataError(f"{source}: the file has no categories")
        pairs.sort()
        return cls(tuple(i for i, _ in pairs), tuple(n for _, n in pairs))

    def __len__(self) -> int:
        return len(self.category_ids)

    def labels(self, category_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(labels int64 [N], found bool [N])`` of dataset ``category_ids`` [N]."""
        known = np.asarray(self.category_ids, dtype=np.int64)
        order = np.argsort(known)
        category_ids = np.asarray(category_ids, dtype=np.int64)
        positions = np.minimum(np.searchsorted(known[order], category_ids), len(known) - 1)
        labels = order[positions]
        return labels.astype(np.int64), known[labels] == category_ids

    def category_id(self, label: int) -> int:
        return self.category_ids[label]


@dataclass(frozen=True)
class DetectionDatasetInfo(DatasetInfo):
    """``DatasetInfo`` plus ``category_ids``: the dataset category id of each contiguous label,
    which a detection task needs to write COCO results files."""

    category_ids: tuple[int, ...] = ()

    def task_kwargs(self) -> dict[str, Any]:
        return {**super().task_kwargs(), "category_ids": list(self.category_ids)}


@dataclass(frozen=True)
class DetectionRecord:
    """One image and its N annotations as read from the dataset files (nothing decoded yet).

    ``boxes`` float32 [N, 4] XYXY in pixels, or in fractions of the image's width and height when
    ``normalized`` (YOLO); ``labels`` int64 [N]; ``iscrowd`` bool [N]; ``annotation_ids`` int64 [N]
    (line numbers for YOLO) for error messages; ``area`` float32 [N] (``None``: box areas);
    ``segmentations`` N COCO segmentations (polygon lists, scaled like the boxes, or RLE dicts);
    ``keypoints`` float32 [N, K, 3] (x, y, visibility); ``size`` the (H, W) the files state.
    """

    image_path: Path
    image_id: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    annotation_ids: np.ndarray
    source: str
    area: np.ndarray | None = None
    segmentations: tuple[Any, ...] | None = None
    keypoints: np.ndarray | None = None
    size: tuple[int, int] | None = None
    normalized: bool = False

    def where(self, annotation: int | None = None) -> str:
        """``"annotations.json (image id 7, annotation id 31)"`` for error messages."""
        detail = f"image id {self.image_id}"
        if annotation is not None:
            detail += f", annotation id {int(self.annotation_ids[annotation])}"
        return f"{self.source} ({detail})"

    @property
    def has_objects(self) -> bool:
        return bool((~self.iscrowd).any())

    def in_pixels(self, height: int, width: int) -> DetectionRecord:
        """This record with normalized coordinates scaled to an image of ``height`` x ``width``."""
        if not self.normalized:
            return self
        scale = np.array([width, height, width, height], dtype=np.float32)
        segmentations = None if self.segmentations is None else tuple(
            [(np.asarray(p, dtype=np.float64).reshape(-1, 2) * (width, height)).ravel().tolist()
             for p in polygons] for polygons in self.segmentations)
        return replace(self, boxes=self.boxes * scale, segmentations=segmentations,
                       normalized=False)


def decode_image(record: DetectionRecord) -> np.ndarray:
    """RGB pixels uint8 [H, W, 3] of ``record``; a DataError names the file and image id."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(record.image_path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{record.image_path}: image file is missing ({record.where()})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{record.image_path}: cannot decode the image ({record.where()}): {error}",
                        hint="re-download or remove the file") from None
    if record.size is not None and tuple(pixels.shape[:2]) != tuple(record.size):
        raise DataError(f"{record.image_path}: image is {pixels.shape[1]}x{pixels.shape[0]} but "
                        f"{record.where()} says {record.size[1]}x{record.size[0]} (width x height)")
    return pixels


def decode_masks(record: DetectionRecord, height: int, width: int) -> np.ndarray:
    """Instance masks uint8 [N, H, W] of the record's polygons or RLE segmentations."""
    from pycocotools import mask as mask_utils

    masks = np.zeros((len(record.segmentations), height, width), dtype=np.uint8)
    for index, segmentation in enumerate(record.segmentations):
        try:
            rle = to_rle(segmentation, height, width, mask_utils)
            masks[index] = mask_utils.decode(rle)
        except (TypeError, ValueError, KeyError, IndexError) as error:
            raise DataError(f"{record.where(index)}: malformed 'segmentation': {error}",
                            hint="polygons [[x1, y1, x2, y2, ...]] or RLE {size, counts}") from None
    return masks


def to_rle(segmentation: Any, height: int, width: int, mask_utils: Any) -> dict:
    """One compressed RLE of a COCO segmentation (polygons, uncompressed or compressed RLE)."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            raise ValueError("no polygon with at least 3 points")
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if list(segmentation["size"]) != [height, width]:
        raise ValueError(f"RLE size {segmentation['size']} is not the image's [{height}, {width}]")
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    counts = segmentation["counts"]
    return {"size": segmentation["size"],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


class DetectionDataset(Dataset):
    """Decodes, transforms and converts one record per item: ``(image [C, H, W], target)``.

    Augmentation is seeded from ``(seed, rank, epoch, worker)`` (see ``EpochSeeding``), so a run
    with the same number of workers draws the same augmentations again, after a resume too."""

    def __init__(self, records: list[DetectionRecord], transform: Any, seeding: EpochSeeding,
                 masks: bool = False, keypoints: bool = False):
        self.records = records
        self.transform = transform
        self.seeding = seeding
        self.masks = masks
        self.keypoints = keypoints

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, DetectionTarget]:
        from visionflow.datamodules.transforms.detection import apply_detection_transform

        seed = self.seeding.new_seed()
        if seed is not None:
            self.transform.set_random_seed(seed)
        record = self.records[index]
        pixels = decode_image(record)                                   # uint8 [H, W, 3]
        record = record.in_pixels(*pixels.shape[:2])
        masks = decode_masks(record, *pixels.shape[:2]) if self.masks else None
        keypoints = record.keypoints if self.keypoints else None
        out = apply_detection_transform(self.transform, pixels, record.boxes, masks, keypoints)
        image = torch.from_numpy(np.ascontiguousarray(out.image.transpose(2, 0, 1)))
        return image, make_target(record, out)                          # [C, H, W] float32

    def set_epoch(self, epoch: int) -> None:
        """Called by the train sampler each epoch: augmentation seeds follow the epoch."""
        self.seeding.set_epoch(epoch)


def make_target(record: DetectionRecord, out: Any) -> DetectionTarget:
    """The target of the annotations that survived the transform (``out.kept``). Areas scale
    with their box (exact for resizes, flips and shifts; proportional for boxes cut by a crop)."""
    in_area = box_areas(record.boxes)[out.kept]
    area = record.area[out.kept] if record.area is not None else in_area
    scale = np.divide(box_areas(out.boxes), in_area, out=np.ones_like(in_area), where=in_area > 0)
    scale[np.isclose(scale, 1.0, rtol=1e-5, atol=0)] = 1.0  # albumentations' float round trip
    return DetectionTarget(
        boxes=torch.as_tensor(out.boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.as_tensor(record.labels[out.kept], dtype=torch.int64),
        image_id=record.image_id,
        iscrowd=torch.as_tensor(record.iscrowd[out.kept], dtype=torch.bool),
        masks=None if out.masks is None else torch.as_tensor(out.masks, dtype=torch.uint8),
        keypoints=None if out.keypoints is None else torch.as_tensor(out.keypoints),
        area=torch.as_tensor(area * scale, dtype=torch.float32))


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas float64 [N] of XYXY ``boxes`` [N, 4]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def collate_detection(samples: list[tuple[torch.Tensor, DetectionTarget]]) -> DetectionBatch:
    """Images stay a list (sizes may differ); one target per image."""
    return PinnableDetectionBatch(images=[image for image, _ in samples],
                                  targets=[target for _, target in samples])


class PinnableDetectionBatch(DetectionBatch):
    """A batch that torch's pin-memory thread can pin (it pins objects with ``pin_memory()``);
    pinning returns a plain :class:`DetectionBatch`."""

    def pin_memory(self) -> DetectionBatch:
        return DetectionBatch([image.pin_memory() for image in self.images],
                              [pinned_target(target) for target in self.targets])


def pinned_target(target: DetectionTarget) -> DetectionTarget:
    return DetectionTarget(**{f.name: pinned(getattr(target, f.name)) for f in fields(target)})


def pinned(value: Any) -> Any:
    return value.pin_memory() if isinstance(value, torch.Tensor) else value


class DetectionDataModule(LightningDataModule):
    """Base of the detection datamodules; subclasses implement :meth:`load_split`.

    ``image_size``: letterbox every image to a square of this side (``None``: keep each image's
    size; the detector resizes internally, and predictions stay in original image coordinates).
    ``transforms``: ``{train: preset or list, eval: ...}`` (defaults ``detection_train`` and
    ``detection_eval``); images come out in ``[0, 1]``, since detectors normalize internally.
    """

    def __init__(self, *, image_size: int | None, batch_size: int, num_workers: int, masks: bool,
                 keypoints: bool, transforms: dict[str, Any] | None, drop_empty_images: bool,
                 seed: int, pin_memory: bool = True):
        super().__init__()
        check_loader_args(image_size, batch_size, num_workers)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.masks = masks
        self.keypoints = keypoints
        self.pipelines = build_pipelines(transforms, image_size, seed)
        self.drop_empty_images = drop_empty_images
        self.seed = seed
        self.pin_memory = pin_memory and torch.cuda.is_available()
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
        raise SpecError("data.args: no split is configured", hint="give at least one split's files")

    @property
    def info(self) -> DetectionDatasetInfo:
        size = None if self.image_size is None else (self.image_size, self.image_size)
        return DetectionDatasetInfo(num_classes=len(self.label_map), class_names=self.label_map.names,
                                    in_channels=3, image_size=size,
                                    category_ids=self.label_map.category_ids)

    def records(self, split: str) -> list[DetectionRecord] | None:
        loaded = self._load(split)
        if loaded is None:
            return None
        records, label_map = loaded
        if label_map != self.label_map:
            raise DataError(f"the {split} split's categories differ from the other splits': "
                            f"{label_map.names} vs {self.label_map.names}")
        if split == "train" and self.drop_empty_images:
            records = [r for r in records if r.has_objects]
        return records

    def _load(self, split: str) -> tuple[list[DetectionRecord], LabelMap] | None:
        if split not in self._splits:
            self._splits[split] = self.load_split(split)
        return self._splits[split]

    # ------------------------------------------------------------------------- Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        self.rank = self.trainer.global_rank if self.trainer is not None else 0
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",), None: ("train", "val", "test")}[stage]
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)

    def _dataset(self, split: str) -> DetectionDataset:
        records = self.records(split)
        if records is None and split == "test":
            records = self.records("val")
        if records is None:
            raise SpecError(f"data.args: the {split} split is not configured",
                            hint=f"give the {split} split's annotation files")
        if not records:
            raise DataError(f"the {split} split has no images")
        pipeline = self.pipelines["train" if split == "train" else "eval"]
        return DetectionDataset(records, pipeline, EpochSeeding(self.seed, self.rank),
                                self.masks, self.keypoints)

    def transform_summary(self) -> dict[str, Any]:
        """The pipelines as plain data (``albumentations.from_dict`` rebuilds them)."""
        from visionflow.datamodules.transforms import describe_transform

        return {phase: describe_transform(pipeline) for phase, pipeline in self.pipelines.items()}

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        dataset = self.datasets[split]
        # a last training batch of one image breaks batch norm on 1x1 maps (SSD heads): drop it
        drop_last = shuffle and len(dataset) > self.batch_size
        return DataLoader(dataset, batch_size=self.batch_size,
                          sampler=EpochShuffleSampler(dataset, self.seed) if shuffle else None,
                          num_workers=self.num_workers, collate_fn=collate_detection,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0,
                          drop_last=drop_last)


def build_pipelines(transforms: dict[str, Any] | None, image_size: int | None,
                    seed: int) -> dict[str, Any]:
    """``{"train": Compose, "eval": Compose}``, bbox- and mask-aware; a bad spec fails here."""
    from visionflow.datamodules.transforms import build_transform, resolve_transforms
    from visionflow.datamodules.transforms.detection import detection_context

    specs = resolve_transforms(transforms, DEFAULT_TRANSFORMS)
    context = detection_context(image_size, seed=seed)
    with warnings.catch_warnings():  # eval pipelines without a geometric step are fine
        warnings.filterwarnings("ignore", message="Got processor for")
        return {phase: build_transform(spec, context, f"data.args.transforms.{phase}")
                for phase, spec in specs.items()}


def check_loader_args(image_size: int | None, batch_size: int, num_workers: int) -> None:
    if image_size is not None and image_size < 16:
        raise SpecError(f"data.args.image_size: must be >= 16 or null, got {image_size}")
    if batch_size < 1:
        raise SpecError(f"data.args.batch_size: must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise SpecError(f"data.args.num_workers: must be >= 0, got {num_workers}")
