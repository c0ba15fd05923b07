"""COCO ground truth, checked record by record before the engine sees it (results: ``coco_results``).

    gt = load_ground_truth("instances_val2017.json", "bbox")       # -> GroundTruth

The file is read once and decoded by msgspec straight into typed records (no dict per record),
which become numpy columns; the checks then run over whole columns. Box files take a fast path
whose record types admit only well-formed records (``bbox`` exactly 4 numbers, every field
present); a file that does not fit is decoded again with lenient types, whose checks name the
first bad record. Every problem is one ``DataError`` naming the file and the record
(``gt.json: annotation #12 (image_id 42, id 907): 'bbox' ... has a negative width or height``):
missing fields, wrong types, unknown image or category ids, repeated annotation ids, negative
boxes, boxes wholly outside their image, masks whose size is not their image's. The engine
(hotcoco) then gets columns it cannot fail on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import numpy as np

from visionflow.errors import DataError
from visionflow.evaluation.coco_checks import NUM_KEYPOINTS, ColumnChecks, checked_sigmas
from visionflow.evaluation.coco_io import (
    Records,
    contents_of,
    decode_exact,
    decode_or_fail,
    gc_paused,
    record_column,
    sorted_unique,
)

__all__ = [
    "IOU_TYPES",
    "NUM_KEYPOINTS",
    "AnnotationColumns",
    "CategoryTable",
    "GroundTruth",
    "check_iou_type",
    "load_ground_truth",
]

IOU_TYPES = ("bbox", "segm", "keypoints")
GT_HINT = (
    "a COCO ground truth is an object with 'images' [{id, height, width}], 'categories' [{id, name}] "
    "and 'annotations' [{id, image_id, category_id, bbox, area, iscrowd, ...}]"
)
Box = tuple[float, float, float, float]


class Annotation(msgspec.Struct, gc=False, omit_defaults=True):
    """One GT annotation of any iou type; its geometry is checked after decoding."""

    id: int
    image_id: int
    category_id: int
    area: float
    iscrowd: int | None = None  # LVIS has none; COCO requires it (see load_ground_truth)
    bbox: list[float] | None = None
    segmentation: Any = None
    keypoints: list[float] | None = None
    num_keypoints: int | None = None


class BoxAnnotation(msgspec.Struct, gc=False):
    """A COCO bbox GT annotation as the fast path takes it: every field, a box of 4 numbers."""

    id: int
    image_id: int
    category_id: int
    area: float
    iscrowd: int
    bbox: Box


AnnotationRecord = TypeVar("AnnotationRecord", Annotation, BoxAnnotation)


class _GroundTruthFile(msgspec.Struct, Generic[AnnotationRecord]):
    images: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    annotations: list[AnnotationRecord]


@dataclass(frozen=True)
class AnnotationColumns:
    """GT annotations as columns [G]: ``ids``, ``image_ids``, ``category_ids``, ``area``,
    ``iscrowd`` (0 where absent: LVIS) and ``boxes`` [G, 4] XYWH (None for segm)."""

    ids: np.ndarray
    image_ids: np.ndarray
    category_ids: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    boxes: np.ndarray | None

    def take(self, rows: np.ndarray) -> AnnotationColumns:
        """The annotations at positions ``rows`` [R]."""
        return AnnotationColumns(
            *(None if column is None else column[rows] for column in self.__dict__.values())
        )

    def as_dicts(self) -> list[dict[str, Any]]:
        """One COCO annotation dict per row (boxes needed), as hotcoco's ``StreamingEval`` takes them."""
        keys = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
        columns = (self.ids, self.image_ids, self.category_ids, self.boxes, self.area, self.iscrowd)
        return [dict(zip(keys, row)) for row in zip(*(column.tolist() for column in columns))]


@dataclass(frozen=True)
class CategoryTable:
    """What a result needs of its ground truth: the iou type, the category ids [K] sorted, their names."""

    iou_type: str
    ids: np.ndarray
    names: tuple[str, ...]


@dataclass(frozen=True)
class GroundTruth:
    """A checked ground truth: images and categories as their dicts, ``image_ids`` [I] and
    ``category_ids`` [K] sorted, ``image_hw`` [I, 2] (-1 where unknown), the annotations as
    columns, and as records for segm and keypoints (the engine reads masks and keypoints there);
    ``keypoint_sigmas`` [K]: custom OKS sigmas, one per keypoint (None: COCO's 17)."""

    source: str
    iou_type: str
    images: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    image_ids: np.ndarray
    image_hw: np.ndarray
    category_ids: np.ndarray
    annotations: AnnotationColumns
    records: list[Annotation] | None
    keypoint_sigmas: tuple[float, ...] | None = None

    @property
    def num_keypoints(self) -> int:
        """Keypoints per object: one per custom sigma, else COCO's 17."""
        return NUM_KEYPOINTS if self.keypoint_sigmas is None else len(self.keypoint_sigmas)

    def category_table(self) -> CategoryTable:
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in self.categories}
        return CategoryTable(
            self.iou_type, self.category_ids, tuple(names[int(c)] for c in self.category_ids)
        )


def load_ground_truth(
    gt: dict | str | Path,
    iou_type: str,
    protocol: str = "coco",
    keypoint_sigmas: Sequence[float] | None = None,
) -> GroundTruth:
    """Ground truth from a COCO (or, ``protocol="lvis"``, LVIS) dataset dict or JSON file path;
    ``keypoint_sigmas`` [K]: OKS sigmas of keypoints other than COCO's 17 (SpecError unless each
    is finite and positive), and then every annotation's keypoints must be K triples."""
    check_iou_type(iou_type)
    sigmas = None if keypoint_sigmas is None else checked_sigmas(keypoint_sigmas)
    source = "<ground truth>" if isinstance(gt, dict) else str(gt)
    with gc_paused():
        data = contents_of(gt, "ground truth")
        decoded = (
            decode_exact(data, _GroundTruthFile[BoxAnnotation])
            if (iou_type, protocol) == ("bbox", "coco")
            else None
        )
        if decoded is None:
            decoded = decode_or_fail(data, _GroundTruthFile[Annotation], source, GT_HINT)
        del data
        return _checked_ground_truth(decoded, source, iou_type, protocol, sigmas)


def check_iou_type(iou_type: str) -> None:
    if iou_type not in IOU_TYPES:
        raise DataError(
            f"unknown iou type {iou_type!r}", hint="use one of: " + ", ".join(IOU_TYPES)
        )


# ------------------------------------------------------------------------------ ground truth


def _box_column(records: list[Any], checks: ColumnChecks) -> np.ndarray:
    """[N, 4] XYWH: straight from records the fast path decoded (4 numbers each), else checked
    one by one."""
    if records and isinstance(records[0], BoxAnnotation):
        flat = np.fromiter(
            chain.from_iterable(map(attrgetter("bbox"), records)), np.float64, 4 * len(records)
        )
        return flat.reshape(-1, 4)
    return checks.boxes_of([record.bbox for record in records])


def _checked_ground_truth(
    decoded: _GroundTruthFile,
    source: str,
    iou_type: str,
    protocol: str,
    keypoint_sigmas: tuple[float, ...] | None,
) -> GroundTruth:
    anns = decoded.annotations
    ids, image_ids = (
        record_column(anns, "id", source, "annotation"),
        record_column(anns, "image_id", source, "annotation"),
    )
    checks = ColumnChecks(source, "annotation", _annotation_hint(iou_type), image_ids, ids)
    exact = bool(anns) and isinstance(anns[0], BoxAnnotation)  # every field there, iscrowd too
    if protocol == "coco" and not exact:
        checks.fail_where(
            np.fromiter((a.iscrowd is None for a in anns), bool, len(anns)),
            lambda i: "missing field 'iscrowd'",
        )
    images = Records(source, "image", decoded.images, GT_HINT)
    known_images, image_hw = _image_sizes(images)
    category_ids = sorted_unique(Records(source, "category", decoded.categories, GT_HINT).ids("id"))
    checks.check_id_range("id", ids)
    checks.check_unique("id", ids)
    checks.fail_where(
        ids == 0,
        lambda i: "annotation id 0",
        "give every annotation an id other than 0: "
        "pycocotools counts a match to the annotation with id 0 as a false positive",
    )
    hw = image_hw[
        checks.lookup(image_ids, "image_id", known_images, "is not in the ground truth's 'images'")
    ]
    categories = record_column(anns, "category_id", source, "annotation")
    checks.lookup(
        categories, "category_id", category_ids, "is not in the ground truth's 'categories'"
    )
    boxes = None
    if iou_type in ("bbox", "keypoints"):
        boxes = _box_column(anns, checks)
        checks.check_boxes(boxes, hw)
    if iou_type == "segm":
        checks.check_masks([a.segmentation for a in anns], hw)
    if iou_type == "keypoints":
        checks.check_keypoints(
            [a.keypoints for a in anns],
            [a.num_keypoints for a in anns],
            NUM_KEYPOINTS if keypoint_sigmas is None else len(keypoint_sigmas),
        )
    columns = AnnotationColumns(
        ids,
        image_ids,
        categories,
        record_column(anns, "area", source, "annotation", np.float64),
        record_column(anns, "iscrowd", source, "annotation")
        if exact
        else np.fromiter((a.iscrowd or 0 for a in anns), np.int64, len(anns)),
        boxes,
    )
    return GroundTruth(
        source,
        iou_type,
        decoded.images,
        decoded.categories,
        known_images,
        image_hw,
        category_ids,
        columns,
        None if iou_type == "bbox" else anns,
        keypoint_sigmas,
    )


def _image_sizes(images: Records) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique image ids [I], (height, width) [I, 2], -1 where an image does not say)."""
    ids = images.ids("id")
    sizes = {}
    for image_id, item in zip(ids.tolist(), images.items):
        height, width = item.get("height"), item.get("width")
        valid = isinstance(height, int) and isinstance(width, int)
        sizes[image_id] = (height, width) if valid else (-1, -1)
    unique = sorted_unique(ids)
    return unique, np.array([sizes[i] for i in unique.tolist()], dtype=np.int64).reshape(-1, 2)


def _annotation_hint(iou_type: str) -> str:
    geometry = {
        "bbox": "bbox [x, y, w, h]",
        "segm": "segmentation (polygons or RLE)",
        "keypoints": "bbox [x, y, w, h], keypoints [x1, y1, v1, ..., x17, y17, v17], num_keypoints",
    }
    return f"{iou_type} GT annotations need id, image_id, category_id, {geometry[iou_type]}, area, iscrowd"
