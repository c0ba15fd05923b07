"""COCO ground truth and results, checked record by record before the engine sees them.

    gt = load_ground_truth("instances_val2017.json", "bbox")       # -> GroundTruth
    dt = load_results("detections.json", gt)                       # -> Results

Each file is read once and decoded by msgspec straight into typed records (no dict per record),
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

import re
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import numpy as np

from visionflow.errors import DataError
from visionflow.evaluation.coco_checks import NUM_KEYPOINTS, ColumnChecks
from visionflow.evaluation.coco_io import Records, gc_paused, read_file, sorted_unique

__all__ = [
    "IOU_TYPES",
    "NUM_KEYPOINTS",
    "AnnotationColumns",
    "CategoryTable",
    "GroundTruth",
    "Results",
    "check_iou_type",
    "load_ground_truth",
    "load_results",
]

IOU_TYPES = ("bbox", "segm", "keypoints")
GT_HINT = (
    "a COCO ground truth is an object with 'images' [{id, height, width}], 'categories' [{id, name}] "
    "and 'annotations' [{id, image_id, category_id, bbox, area, iscrowd, ...}]"
)
RESULTS_HINT = (
    "results are a JSON list of {image_id, category_id, score, bbox [x, y, w, h]} "
    "(+ segmentation RLE for segm, keypoints [x1, y1, v1, ...] for keypoints)"
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


class Detection(msgspec.Struct, gc=False, omit_defaults=True):
    """One result record of any iou type, as ``COCO.loadRes`` reads it."""

    image_id: int
    category_id: int
    score: float
    bbox: list[float] | None = None
    segmentation: Any = None
    keypoints: list[float] | None = None


class BoxAnnotation(msgspec.Struct, gc=False):
    """A COCO bbox GT annotation as the fast path takes it: every field, a box of 4 numbers."""

    id: int
    image_id: int
    category_id: int
    area: float
    iscrowd: int
    bbox: Box


class BoxDetection(msgspec.Struct, gc=False):
    """A bbox result as the fast path takes it."""

    image_id: int
    category_id: int
    score: float
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
    columns, and as records for segm and keypoints (the engine reads masks and keypoints there)."""

    source: str
    iou_type: str
    images: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    image_ids: np.ndarray
    image_hw: np.ndarray
    category_ids: np.ndarray
    annotations: AnnotationColumns
    records: list[Annotation] | None

    def category_table(self) -> CategoryTable:
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in self.categories}
        return CategoryTable(
            self.iou_type, self.category_ids, tuple(names[int(c)] for c in self.category_ids)
        )


@dataclass(frozen=True)
class Results:
    """Checked results [N]: each one's image id, and for bbox ``columns`` [N, 7] float64 (image_id,
    x, y, w, h, score, category_id), the form ``hotcoco.COCO.load_res`` takes; for masks and
    keypoints the ``records`` themselves (the engine reads those from the records)."""

    source: str
    image_ids: np.ndarray
    columns: np.ndarray | None
    records: list[Detection] | None


def load_ground_truth(gt: dict | str | Path, iou_type: str, protocol: str = "coco") -> GroundTruth:
    """Ground truth from a COCO (or, ``protocol="lvis"``, LVIS) dataset dict or JSON file path."""
    check_iou_type(iou_type)
    source = "<ground truth>" if isinstance(gt, dict) else str(gt)
    with gc_paused():
        data = _contents(gt, "ground truth")
        decoded = (
            _decode_exact(data, _GroundTruthFile[BoxAnnotation])
            if (iou_type, protocol) == ("bbox", "coco")
            else None
        )
        if decoded is None:
            decoded = _decode(data, _GroundTruthFile[Annotation], source, GT_HINT)
        del data
        return _checked_ground_truth(decoded, source, iou_type, protocol)


def load_results(results: list | str | Path, gt: GroundTruth, source: str | None = None) -> Results:
    """Results from a list of result dicts or the path of a results JSON file."""
    source = source or ("<results>" if isinstance(results, list) else str(results))
    with gc_paused():
        data = _contents(results, "results")
        records = _decode_exact(data, list[BoxDetection]) if gt.iou_type == "bbox" else None
        if records is None:
            records = _decode(data, list[Detection], source, RESULTS_HINT)
        del data
        return _checked_results(records, gt, source)


def check_iou_type(iou_type: str) -> None:
    if iou_type not in IOU_TYPES:
        raise DataError(
            f"unknown iou type {iou_type!r}", hint="use one of: " + ", ".join(IOU_TYPES)
        )


# ------------------------------------------------------------------------------------ decoding


def _contents(value: Any, what: str) -> Any:
    """The bytes of the file at ``value`` (a path), else ``value`` itself (parsed JSON data)."""
    return read_file(Path(value), what) if isinstance(value, (str, Path)) else value


def _decode_exact(value: Any, kind: Any) -> Any:
    """``value`` (JSON bytes or parsed data) as ``kind``, or None where it does not fit: then the
    lenient decoding finds and names the problem."""
    try:
        return (
            msgspec.json.decode(value, type=kind)
            if isinstance(value, bytes)
            else msgspec.convert(value, kind)
        )
    except msgspec.MsgspecError:
        return None


def _decode(value: Any, kind: Any, source: str, hint: str) -> Any:
    """``value`` (JSON bytes or parsed data) as ``kind``; errors name the record."""
    try:
        return (
            msgspec.json.decode(value, type=kind)
            if isinstance(value, bytes)
            else msgspec.convert(value, kind)
        )
    except msgspec.ValidationError as error:
        raise DataError(f"{source}: {_readable(str(error))}", hint=hint) from None
    except msgspec.DecodeError as error:
        raise DataError(f"{source}: invalid JSON ({error})", hint=hint) from None


_RECORD_KINDS = {"annotations": "annotation", "images": "image", "categories": "category"}


def _readable(message: str) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.annotations[3].image_id``` as
    ``annotation #3: 'image_id': expected int, got str``."""
    problem, _, path = message.partition(" - at `")
    problem = problem.replace("`", "'").replace("Object missing required field", "missing field")
    problem = problem[:1].lower() + problem[1:]
    match = re.fullmatch(r"\$(?:\.(\w+))?(?:\[(\d+)\])?((?:\.\w+|\[\d+\])*)`?", path)
    if not path or match is None:
        return problem
    section, index, rest = match.groups()
    record = _RECORD_KINDS.get(section or "", "detection" if section is None else section)
    where = f"{record} #{index}" if index is not None else f"{section!r}"
    field = rest.lstrip(".").split("[")[0]
    return f"{where}: {f'{field!r}: ' if field else ''}{problem}"


def _column(
    records: list[Any], key: str, source: str, kind: str, dtype: Any = np.int64
) -> np.ndarray:
    """The records' ``key`` as a column [N] (decoding checked the type; an int beyond int64 fails)."""
    try:
        return np.fromiter(map(attrgetter(key), records), dtype, len(records))
    except OverflowError:
        index = next(i for i, record in enumerate(records) if abs(getattr(record, key)) >= 2**63)
        raise DataError(
            f"{source}: {kind} #{index}: {key!r} {getattr(records[index], key)} does not fit in 64 bits",
            hint="ids are integers below 2**63",
        ) from None


def _box_column(records: list[Any], checks: ColumnChecks) -> np.ndarray:
    """[N, 4] XYWH: straight from records the fast path decoded (4 numbers each), else checked
    one by one."""
    if records and isinstance(records[0], (BoxAnnotation, BoxDetection)):
        flat = np.fromiter(
            chain.from_iterable(map(attrgetter("bbox"), records)), np.float64, 4 * len(records)
        )
        return flat.reshape(-1, 4)
    return checks.boxes_of([record.bbox for record in records])


# ------------------------------------------------------------------------------ ground truth


def _checked_ground_truth(
    decoded: _GroundTruthFile, source: str, iou_type: str, protocol: str
) -> GroundTruth:
    anns = decoded.annotations
    ids, image_ids = (
        _column(anns, "id", source, "annotation"),
        _column(anns, "image_id", source, "annotation"),
    )
    checks = ColumnChecks(source, "annotation", _annotation_hint(iou_type), image_ids, ids)
    if protocol == "coco":
        checks.fail_where(
            np.fromiter((a.iscrowd is None for a in anns), bool, len(anns)),
            lambda i: "missing field 'iscrowd'",
        )
    images = Records(source, "image", decoded.images, GT_HINT)
    known_images, image_hw = _image_sizes(images)
    category_ids = sorted_unique(
        Records(source, "category", decoded.categories, GT_HINT).integers("id")
    )
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
    categories = _column(anns, "category_id", source, "annotation")
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
        checks.check_keypoints([a.keypoints for a in anns], [a.num_keypoints for a in anns])
    columns = AnnotationColumns(
        ids,
        image_ids,
        categories,
        _column(anns, "area", source, "annotation", np.float64),
        np.fromiter((a.iscrowd or 0 for a in anns), np.int64, len(anns)),
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
    )


def _image_sizes(images: Records) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique image ids [I], (height, width) [I, 2], -1 where an image does not say)."""
    ids = images.integers("id")
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


# ----------------------------------------------------------------------------------- results


def _engine_table(
    image_ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray, category_ids: np.ndarray
) -> np.ndarray:
    """[N, 7] float64 (image_id, x, y, w, h, score, category_id), the rows ``hotcoco.COCO.load_res``
    takes, from the columns [N] and ``boxes`` [N, 4]: each written once into a column-major block
    (the result is a view of [7, N]; hotcoco reads it as it is, no copy of the rows)."""
    table = np.empty((7, len(scores)))
    table[0], table[1:5], table[5], table[6] = image_ids, boxes.T, scores, category_ids
    return table.T


def _checked_results(
    records: list[BoxDetection] | list[Detection], gt: GroundTruth, source: str
) -> Results:
    image_ids = _column(records, "image_id", source, "detection")
    checks = ColumnChecks(source, "detection", RESULTS_HINT, image_ids)
    hw = gt.image_hw[
        checks.lookup(
            image_ids, "image_id", gt.image_ids, f"is not an image of the ground truth {gt.source}"
        )
    ]
    category_ids = _column(records, "category_id", source, "detection")
    checks.lookup(
        category_ids,
        "category_id",
        gt.category_ids,
        f"is not a category of the ground truth {gt.source}",
    )
    scores = _column(records, "score", source, "detection", np.float64)
    checks.check_scores(scores)
    if gt.iou_type == "bbox":
        boxes = _box_column(records, checks)
        checks.check_boxes(boxes, hw)
        return Results(
            source, image_ids, _engine_table(image_ids, boxes, scores, category_ids), None
        )
    if gt.iou_type == "segm":
        checks.check_masks([r.segmentation for r in records], hw)
    else:
        checks.check_keypoints([r.keypoints for r in records], None)
    return Results(source, image_ids, None, records)
