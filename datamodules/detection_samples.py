"""From a record to a sample: label maps, records, image and mask decoding, the per-item
dataset, and collation into ``DetectionBatch``.

A source module (COCO, VOC, YOLO) reads its files into a :class:`LabelMap` and
:class:`DetectionRecord` s; :class:`DetectionDataset` decodes one record per item in a DataLoader
worker, runs the bbox-aware transform and converts the result into a ``DetectionTarget``;
:func:`collate_detection` batches them. :mod:`visionflow.datamodules.detection_base` holds the
DataModule that wires these together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from visionflow.batches import DetectionBatch, DetectionTarget, InstanceBatch, KeypointBatch
from visionflow.datamodules.base import EpochSeeding
from visionflow.errors import DataError


@dataclass(frozen=True)
class LabelMap:
    """Dataset category ids <-> contiguous labels ``0..K-1`` (label ``i`` is ``category_ids[i]``).

    ``keypoint_names``: per label, the names of its keypoints (COCO ``categories[].keypoints``,
    e.g. ``("nose", "left_eye", "right_eye", ...)``; ``()`` for a category without keypoints), or
    ``()`` when the source names no keypoints at all. Flips use them to swap left and right.
    """

    category_ids: tuple[int, ...]
    names: tuple[str, ...]
    keypoint_names: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def from_categories(cls, categories: Iterable[Mapping[str, Any]], source: str) -> LabelMap:
        """From COCO ``categories`` (``{id, name, keypoints?}`` objects), in ascending id order."""
        rows = [category_row(category, index, source) for index, category in enumerate(categories)]
        ids = [row[0] for row in rows]
        if len(set(ids)) != len(ids):
            raise DataError(f"{source}: category ids repeat: {sorted(ids)}")
        if not rows:
            raise DataError(f"{source}: the file has no categories")
        rows.sort()
        keypoint_names = tuple(row[2] for row in rows)
        return cls(
            tuple(row[0] for row in rows),
            tuple(row[1] for row in rows),
            keypoint_names if any(keypoint_names) else (),
        )

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


def category_row(category: Any, index: int, source: str) -> tuple[int, str, tuple[str, ...]]:
    """``(id, name, keypoint names)`` of COCO category #``index``; a DataError names it."""
    if not isinstance(category, Mapping) or not isinstance(category.get("id"), int):
        raise DataError(
            f"{source}: category #{index} has no integer 'id'",
            hint="categories are [{id: int, name: str}, ...]",
        )
    keypoints = category.get("keypoints") or []
    if not isinstance(keypoints, list) or not all(isinstance(k, str) for k in keypoints):
        raise DataError(
            f"{source}: category id {category['id']}: 'keypoints' must be a list of "
            f"names, got {keypoints!r}",
            hint='e.g. "keypoints": ["nose", "left_eye", "right_eye", ...]',
        )
    return category["id"], str(category.get("name", category["id"])), tuple(keypoints)


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

    def check_inside(self, height: float, width: float) -> None:
        """DataError naming the first box with no pixel inside a ``height`` x ``width`` image (in
        the record's units: 1 x 1 when ``normalized``). A box partly outside is kept: the
        transform clips it to the image, as COCO's own tools do."""
        outside = wholly_outside(self.boxes, height, width)
        if outside.any():
            index = int(np.flatnonzero(outside)[0])
            units = (
                "fractions of the image"
                if self.normalized
                else f"pixels of a {width}x{height} image"
            )
            raise DataError(
                f"{self.where(index)}: box {[round(float(v), 4) for v in self.boxes[index]]} (XYXY, "
                f"{units}) lies wholly outside the image",
                hint="fix or delete that annotation; a box partly outside is clipped to the image",
            )

    @property
    def has_objects(self) -> bool:
        return bool((~self.iscrowd).any())

    def in_pixels(self, height: int, width: int) -> DetectionRecord:
        """This record with normalized coordinates scaled to an image of ``height`` x ``width``."""
        if not self.normalized:
            return self
        scale = np.array([width, height, width, height], dtype=np.float32)
        segmentations = (
            None
            if self.segmentations is None
            else tuple(
                [
                    (np.asarray(p, dtype=np.float64).reshape(-1, 2) * (width, height))
                    .ravel()
                    .tolist()
                    for p in polygons
                ]
                for polygons in self.segmentations
            )
        )
        return replace(
            self, boxes=self.boxes * scale, segmentations=segmentations, normalized=False
        )


def wholly_outside(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """bool [N]: the non-empty XYXY box of ``boxes`` [N, 4] has no pixel inside the image."""
    x1, y1, x2, y2 = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).T
    return (x2 > x1) & (y2 > y1) & ((x1 >= width) | (y1 >= height) | (x2 <= 0) | (y2 <= 0))


def decode_image(record: DetectionRecord) -> np.ndarray:
    """RGB pixels uint8 [H, W, 3] of ``record``; a DataError names the file and image id."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(record.image_path) as image:
            pixels = rgb_pixels(image)
    except FileNotFoundError:
        raise DataError(f"{record.image_path}: image file is missing ({record.where()})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"{record.image_path}: cannot decode the image ({record.where()}): {error}",
            hint="re-download or remove the file",
        ) from None
    if record.size is not None and tuple(pixels.shape[:2]) != tuple(record.size):
        raise DataError(
            f"{record.image_path}: image is {pixels.shape[1]}x{pixels.shape[0]} but "
            f"{record.where()} says {record.size[1]}x{record.size[0]} (width x height)"
        )
    return pixels


def rgb_pixels(image: Any) -> np.ndarray:
    """uint8 [H, W, 3] of a PIL image of any mode: integer grey levels (16-bit PNGs and TIFFs,
    read as 16-bit) are scaled to 8 bits, where PIL's own conversion would clip them to white;
    palette transparency goes through RGBA; CMYK and the rest through PIL's conversion."""
    if image.mode.startswith("I"):  # "I;16", "I;16B", "I": 16-bit PNGs and TIFFs
        grey = np.asarray(image, dtype=np.int64)
        eight_bit = (np.clip(grey, 0, 65535) // 257).astype(np.uint8)  # 65535 -> 255
        return np.repeat(eight_bit[..., None], 3, axis=2)
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def decode_masks(record: DetectionRecord, height: int, width: int) -> np.ndarray:
    """Instance masks uint8 [N, H, W] of the record's polygons or RLE segmentations."""
    from pycocotools import mask as mask_utils

    masks = np.zeros((len(record.segmentations), height, width), dtype=np.uint8)
    for index, segmentation in enumerate(record.segmentations):
        try:
            rle = to_rle(segmentation, height, width, mask_utils)
            masks[index] = mask_utils.decode(rle)
        except (TypeError, ValueError, KeyError, IndexError) as error:
            raise DataError(
                f"{record.where(index)}: malformed 'segmentation': {error}",
                hint="polygons [[x1, y1, x2, y2, ...]] or RLE {size, counts}",
            ) from None
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
    return {
        "size": segmentation["size"],
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


class DetectionDataset(Dataset):
    """Decodes, transforms and converts one record per item: ``(image [C, H, W], target)``.

    Augmentation is seeded from ``(seed, rank, epoch, worker)`` (see ``EpochSeeding``), so a run
    with the same number of workers draws the same augmentations again, after a resume too.
    ``keypoint_names`` (``LabelMap.keypoint_names``) tell which keypoints a flip swaps."""

    def __init__(
        self,
        records: list[DetectionRecord],
        transform: Any,
        seeding: EpochSeeding,
        masks: bool = False,
        keypoints: bool = False,
        keypoint_names: tuple[tuple[str, ...], ...] = (),
    ):
        from visionflow.datamodules.transforms.detection import label_mirror_orders

        self.records = records
        self.transform = transform
        self.seeding = seeding
        self.masks = masks
        self.keypoints = keypoints
        self.mirror_orders = label_mirror_orders(keypoint_names) if keypoints else {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, DetectionTarget]:
        from visionflow.datamodules.transforms.detection import (
            annotation_mirror_orders,
            apply_detection_transform,
        )

        seed = self.seeding.new_seed()
        if seed is not None:
            self.transform.set_random_seed(seed)
        record = self.records[index]
        pixels = decode_image(record)  # uint8 [H, W, 3]
        record = record.in_pixels(*pixels.shape[:2])
        record.check_inside(*pixels.shape[:2])  # a source without image sizes is checked here
        masks = decode_masks(record, *pixels.shape[:2]) if self.masks else None
        keypoints = record.keypoints if self.keypoints else None
        mirror = (
            None
            if keypoints is None
            else annotation_mirror_orders(self.mirror_orders, record.labels, keypoints.shape[1])
        )
        out = apply_detection_transform(
            self.transform, pixels, record.boxes, masks, keypoints, mirror
        )
        image = torch.from_numpy(np.ascontiguousarray(out.image.transpose(2, 0, 1)))
        return image, make_target(record, out)  # [C, H, W] float32

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
        area=torch.as_tensor(area * scale, dtype=torch.float32),
    )


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas float64 [N] of XYXY ``boxes`` [N, 4]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def collate_detection(
    samples: list[tuple[torch.Tensor, DetectionTarget]],
    batch_type: type[DetectionBatch] = DetectionBatch,
) -> DetectionBatch:
    """A ``batch_type`` of the samples: images stay a list (sizes may differ); one target each."""
    return PINNABLE[batch_type](
        images=[image for image, _ in samples], targets=[target for _, target in samples]
    )


class PinnableDetectionBatch(DetectionBatch):
    """A batch that torch's pin-memory thread can pin (it pins objects with ``pin_memory()``);
    pinning returns a plain ``plain_type``."""

    plain_type: type[DetectionBatch] = DetectionBatch

    def pin_memory(self) -> DetectionBatch:
        return self.plain_type(
            [image.pin_memory() for image in self.images],
            [pinned_target(target) for target in self.targets],
        )


class PinnableInstanceBatch(PinnableDetectionBatch, InstanceBatch):
    plain_type = InstanceBatch


class PinnableKeypointBatch(PinnableDetectionBatch, KeypointBatch):
    plain_type = KeypointBatch


PINNABLE = {
    batch.plain_type: batch
    for batch in (PinnableDetectionBatch, PinnableInstanceBatch, PinnableKeypointBatch)
}


def pinned_target(target: DetectionTarget) -> DetectionTarget:
    return DetectionTarget(**{f.name: pinned(getattr(target, f.name)) for f in fields(target)})


def pinned(value: Any) -> Any:
    return value.pin_memory() if isinstance(value, torch.Tensor) else value
