"""COCO ground truth and results, checked record by record before the engine sees them.

    gt = load_ground_truth("instances_val2017.json", "bbox")       # -> GroundTruth
    dt = load_results("detections.json", gt)                       # -> Results

Files are decoded by msgspec into typed records (no dict per record: about half the memory and
time of a dict parse), then checked as numpy columns. Every problem is one ``DataError`` naming
the file and the record (``gt.json: annotation #12 (image_id 42): 'bbox' has a negative width``):
missing fields, wrong types, unknown image or category ids, repeated annotation ids, negative
boxes, boxes wholly outside their image, masks whose size is not their image's. The engine
(hotcoco) then gets columns it cannot fail on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from visionflow.errors import DataError
from visionflow.evaluation.coco_io import Records, gc_paused, index_of, read_file

IOU_TYPES = ("bbox", "segm", "keypoints")
NUM_KEYPOINTS = 17
GT_HINT = ("a COCO ground truth is an object with 'images' [{id, height, width}], 'categories' [{id, name}] "
           "and 'annotations' [{id, image_id, category_id, bbox, area, iscrowd, ...}]")
RESULTS_HINT = ("results are a JSON list of {image_id, category_id, score, bbox [x, y, w, h]} "
                "(+ segmentation RLE for segm, keypoints [x1, y1, v1, ...] for keypoints)")


class Annotation(msgspec.Struct, gc=False, omit_defaults=True):
    """One GT annotation; the geometry its iou type needs is checked after decoding."""

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
    """One result record, as ``COCO.loadRes`` reads it."""

    image_id: int
    category_id: int
    score: float
    bbox: list[float] | None = None
    segmentation: Any = None
    keypoints: list[float] | None = None


class _GroundTruthFile(msgspec.Struct):
    images: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    annotations: list[Annotation]


@dataclass(frozen=True)
class GroundTruth:
    """A checked ground truth: images and categories as their dicts, annotations [G] as records,
    ``image_ids`` [I] and ``category_ids`` [K] sorted, ``image_hw`` [I, 2] (-1 where unknown)."""

    source: str
    iou_type: str
    images: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    annotations: list[Annotation]
    image_ids: np.ndarray
    image_hw: np.ndarray
    category_ids: np.ndarray


@dataclass(frozen=True)
class Results:
    """Checked results [N]: ``columns`` [N, 7] float64 (image_id, x, y, w, h, score, category_id),
    the form ``hotcoco.COCO.load_res`` takes for boxes; ``records`` when masks or keypoints are
    evaluated (the engine reads those from the records)."""

    source: str
    columns: np.ndarray
    records: list[Detection] | None


def load_ground_truth(gt: dict | str | Path, iou_type: str, protocol: str = "coco") -> GroundTruth:
    """Ground truth from a COCO (or, ``protocol="lvis"``, LVIS) dataset dict or JSON file path."""
    check_iou_type(iou_type)
    source = "<ground truth>" if isinstance(gt, dict) else str(gt)
    decoded = _decode(gt, _GroundTruthFile, source, "ground truth", GT_HINT)
    if protocol == "coco":
        columns = _Columns(source, "annotation", decoded.annotations, _annotation_hint(iou_type))
        columns.fail_where(np.array([a.iscrowd is None for a in decoded.annotations], dtype=bool),
                           lambda i: "missing field 'iscrowd'")
    return _checked_ground_truth(decoded, source, iou_type)


def load_results(results: list | str | Path, gt: GroundTruth, source: str | None = None) -> Results:
    """Results from a list of result dicts or the path of a results JSON file."""
    source = source or ("<results>" if isinstance(results, list) else str(results))
    if gt.iou_type == "bbox" and isinstance(results, (str, Path)):
        return _checked_box_results(_box_columns_of_file(Path(results), source), gt, source)
    records = _decode(results, list[Detection], source, "results", RESULTS_HINT)
    if gt.iou_type == "bbox":
        return _checked_box_results(_box_columns(records, source), gt, source)
    return _checked_results(records, gt, source)


def check_iou_type(iou_type: str) -> None:
    if iou_type not in IOU_TYPES:
        raise DataError(f"unknown iou type {iou_type!r}", hint="use one of: " + ", ".join(IOU_TYPES))


# ------------------------------------------------------------------------------------ decoding

def _decode(value: Any, kind: Any, source: str, what: str, hint: str, offset: int = 0) -> Any:
    """``value`` (a path, JSON bytes, or already-parsed JSON data) as ``kind``; errors name the
    record (``offset``: the index of the first record, when ``value`` is a part of a file)."""
    with gc_paused():
        try:
            if isinstance(value, (str, Path)):
                return msgspec.json.decode(read_file(Path(value), what), type=kind)
            if isinstance(value, bytes):
                return msgspec.json.decode(value, type=kind)
            return msgspec.convert(value, type=kind)
        except msgspec.ValidationError as error:
            raise DataError(f"{source}: {_readable(str(error), offset)}", hint=hint) from None
        except msgspec.DecodeError as error:
            raise DataError(f"{source}: invalid JSON ({error})", hint=hint) from None


CHUNK_RECORDS = 65_536  # results decoded into typed records at a time: memory stays that of the columns


def _box_columns_of_file(path: Path, source: str) -> _BoxColumns:
    """The box columns of a results file, decoded a chunk of records at a time: the file is split
    into raw records (views of its bytes), and only one chunk of them is ever typed records."""
    raws = _decode(path, list[msgspec.Raw], source, "results", RESULTS_HINT)
    parts = [_box_columns(_decode(b"[" + b",".join(raws[start:start + CHUNK_RECORDS]) + b"]",
                                  list[Detection], source, "results", RESULTS_HINT, offset=start), source, start)
             for start in range(0, len(raws), CHUNK_RECORDS)]
    del raws
    return _BoxColumns(*(np.concatenate([getattr(p, name) for p in parts]) if parts else empty
                         for name, empty in _BoxColumns.empty().__dict__.items()))


_RECORD_KINDS = {"annotations": "annotation", "images": "image", "categories": "category"}


def _readable(message: str, offset: int = 0) -> str:
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
    where = f"{record} #{int(index) + offset}" if index is not None else f"{section!r}"
    field = rest.lstrip(".").split("[")[0]
    return f"{where}: {f'{field!r}: ' if field else ''}{problem}"


# ------------------------------------------------------------------------------ ground truth

def _checked_ground_truth(decoded: _GroundTruthFile, source: str, iou_type: str) -> GroundTruth:
    images = Records(source, "image", decoded.images, GT_HINT)
    categories = Records(source, "category", decoded.categories, GT_HINT)
    image_ids, image_hw = _image_sizes(images)
    category_ids = np.unique(categories.integers("id"))
    anns = decoded.annotations
    columns = _Columns(source, "annotation", anns, _annotation_hint(iou_type))
    ann_ids = np.fromiter((a.id for a in anns), np.int64, len(anns))
    columns.check_unique("id", ann_ids)
    columns.fail_where(ann_ids == 0, lambda i: "annotation id 0", "give every annotation an id other than 0: "
                       "pycocotools counts a match to the annotation with id 0 as a false positive")
    image_index = columns.lookup(columns.integers("image_id"), "image_id", image_ids,
                                 "is not in the ground truth's 'images'")
    columns.lookup(columns.integers("category_id"), "category_id", category_ids,
                   "is not in the ground truth's 'categories'")
    if iou_type in ("bbox", "keypoints"):
        columns.check_boxes(columns.boxes(), image_hw[image_index])
    if iou_type == "segm":
        columns.check_masks(image_hw[image_index])
    if iou_type == "keypoints":
        columns.check_keypoints(require_count=True)
    return GroundTruth(source, iou_type, decoded.images, decoded.categories, anns, image_ids, image_hw,
                       category_ids)


def _image_sizes(images: Records) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique image ids [I], (height, width) [I, 2], -1 where an image does not say)."""
    ids = images.integers("id")
    sizes = {}
    for image_id, item in zip(ids.tolist(), images.items):
        height, width = item.get("height"), item.get("width")
        valid = isinstance(height, int) and isinstance(width, int)
        sizes[image_id] = (height, width) if valid else (-1, -1)
    unique = np.unique(ids)
    return unique, np.array([sizes[i] for i in unique.tolist()], dtype=np.int64).reshape(-1, 2)


def _annotation_hint(iou_type: str) -> str:
    geometry = {"bbox": "bbox [x, y, w, h]", "segm": "segmentation (polygons or RLE)",
                "keypoints": "bbox [x, y, w, h], keypoints [x1, y1, v1, ..., x17, y17, v17], num_keypoints"}
    return f"{iou_type} GT annotations need id, image_id, category_id, {geometry[iou_type]}, area, iscrowd"


# ----------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class _BoxColumns:
    """Box results as columns: image and category ids [N], scores [N], XYWH boxes [N, 4]."""

    image_ids: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    @staticmethod
    def empty() -> _BoxColumns:
        none = np.zeros(0, dtype=np.int64)
        return _BoxColumns(none, none, np.zeros(0), np.zeros((0, 4)))


def _box_columns(records: list[Detection], source: str, offset: int = 0) -> _BoxColumns:
    columns = _Columns(source, "detection", records, RESULTS_HINT, offset)
    return _BoxColumns(columns.integers("image_id"), columns.integers("category_id"),
                       columns.integers("score", np.float64), columns.boxes())


def _checked_box_results(found: _BoxColumns, gt: GroundTruth, source: str) -> Results:
    columns = _Columns(source, "detection", None, RESULTS_HINT, image_ids=found.image_ids)
    image_index = columns.lookup(found.image_ids, "image_id", gt.image_ids,
                                 f"is not an image of the ground truth {gt.source}")
    columns.lookup(found.category_ids, "category_id", gt.category_ids,
                   f"is not a category of the ground truth {gt.source}")
    columns.fail_where(~np.isfinite(found.scores), lambda i: f"'score' is {found.scores[i]}, not a finite number")
    columns.check_boxes(found.boxes, gt.image_hw[image_index])
    table = np.column_stack([found.image_ids, found.boxes, found.scores, found.category_ids])
    return Results(source, table.astype(np.float64).reshape(-1, 7), None)


def _checked_results(records: list[Detection], gt: GroundTruth, source: str) -> Results:
    """Mask or keypoint results: checked, then given to the engine as records."""
    columns = _Columns(source, "detection", records, RESULTS_HINT)
    image_index = columns.lookup(columns.integers("image_id"), "image_id", gt.image_ids,
                                 f"is not an image of the ground truth {gt.source}")
    columns.lookup(columns.integers("category_id"), "category_id", gt.category_ids,
                   f"is not a category of the ground truth {gt.source}")
    scores = columns.integers("score", np.float64)
    columns.fail_where(~np.isfinite(scores), lambda i: f"'score' is {scores[i]}, not a finite number")
    if gt.iou_type == "segm":
        columns.check_masks(gt.image_hw[image_index])
    else:
        columns.check_keypoints(require_count=False)
    return Results(source, np.zeros((0, 7)), records)


class _Columns:
    """Column checks over decoded records; each failure names the first bad record."""

    def __init__(self, source: str, kind: str, records: list[Any] | None, hint: str, offset: int = 0,
                 image_ids: np.ndarray | None = None):
        self.source, self.kind, self.records, self.hint, self.offset = source, kind, records, hint, offset
        self.image_ids = image_ids

    def fail(self, index: int, problem: str, hint: str | None = None) -> DataError:
        image_id = self.records[index].image_id if self.records is not None else self.image_ids[index]
        details = f"image_id {image_id}" + (f", id {self.records[index].id}" if self.kind == "annotation" else "")
        return DataError(f"{self.source}: {self.kind} #{index + self.offset} ({details}): {problem}",
                         hint=hint or self.hint)

    def fail_where(self, bad: np.ndarray, problem: Any, hint: str | None = None) -> None:
        if bad.any():
            index = int(np.argmax(bad))
            raise self.fail(index, problem(index), hint)

    def integers(self, key: str, dtype: Any = np.int64) -> np.ndarray:
        """The records' ``key`` as a column [N] (decoding already checked its type)."""
        return np.fromiter((getattr(r, key) for r in self.records), dtype, len(self.records))

    def lookup(self, ids: np.ndarray, key: str, sorted_ids: np.ndarray, problem: str) -> np.ndarray:
        """Positions [N] of ``ids`` (the records' ``key``) in ``sorted_ids``; an unknown id fails."""
        positions, found = index_of(sorted_ids, ids)
        self.fail_where(~found, lambda i: f"{key} {ids[i]} {problem}")
        return positions

    def check_unique(self, key: str, ids: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
        if len(repeated):
            index = int(order[repeated[0] + 1])
            raise self.fail(index, f"{key} {ids[index]} is used twice", hint="every annotation needs its own 'id'")

    def boxes(self) -> np.ndarray:
        """[N, 4] XYWH; a missing box, or one that is not 4 finite numbers, fails."""
        values = [r.bbox for r in self.records]
        try:
            boxes = np.array(values, dtype=np.float64).reshape(-1, 4)
        except (ValueError, TypeError):
            boxes = None
        if boxes is None or len(boxes) != len(values):
            for index, value in enumerate(values):
                if value is None or len(value) != 4:
                    raise self.fail(index, f"'bbox' must be [x, y, width, height], got {value!r}")
        self.fail_where(~np.isfinite(boxes).all(axis=1), lambda i: f"'bbox' {values[i]} is not finite")
        return boxes

    def check_boxes(self, boxes: np.ndarray, image_hw: np.ndarray) -> None:
        """No negative width or height; no box wholly outside its image (where the size is known)."""
        self.fail_where((boxes[:, 2:] < 0).any(axis=1), lambda i: f"'bbox' {boxes[i].tolist()} has a negative "
                        "width or height", "COCO boxes are [x, y, width, height] with width, height >= 0")
        x, y, w, h = boxes.T
        height, width = image_hw.T
        outside = (height >= 0) & ((x >= width) | (y >= height) | (x + w <= 0) | (y + h <= 0))
        self.fail_where(outside, lambda i: f"'bbox' {boxes[i].tolist()} lies wholly outside its "
                        f"{width[i]}x{height[i]} image", "boxes are [x, y, width, height] in pixels of their "
                        "image; check the image ids and the box format")

    def check_masks(self, image_hw: np.ndarray) -> None:
        """Every segmentation is polygons or RLE; an RLE's size is its image's (height, width)."""
        for index, record in enumerate(self.records):
            self._check_mask(index, record.segmentation, image_hw[index])

    def _check_mask(self, index: int, segmentation: Any, height_width: np.ndarray) -> None:
        hint = ("a 'segmentation' is polygons [[x1, y1, x2, y2, ...], ...] or RLE "
                "{size: [height, width], counts: ...} of its image's size")
        if isinstance(segmentation, list):
            if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation) \
                    or not segmentation:
                raise self.fail(index, "'segmentation' polygons must be lists of at least 3 (x, y) points", hint)
            if height_width[0] < 0:
                raise self.fail(index, "its image has no integer 'height' and 'width', needed to rasterize "
                                "polygons", "add 'height' and 'width' to every entry of the GT's 'images'")
            return
        if not isinstance(segmentation, dict) or not isinstance(segmentation.get("counts"), (str, list)):
            raise self.fail(index, f"'segmentation' is not polygons or RLE ({_short(segmentation)})", hint)
        size = segmentation.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise self.fail(index, f"RLE 'size' must be [height, width], got {size!r}", hint)
        if height_width[0] >= 0 and size != height_width.tolist():
            raise self.fail(index, f"the mask is {size[0]}x{size[1]} (height x width) but its image is "
                            f"{height_width[0]}x{height_width[1]}", hint)

    def check_keypoints(self, require_count: bool) -> None:
        length = 3 * NUM_KEYPOINTS
        for index, record in enumerate(self.records):
            points = record.keypoints
            if points is None or len(points) != length or not all(map(np.isfinite, points)):
                raise self.fail(index, f"'keypoints' must be {length} finite numbers "
                                "[x1, y1, v1, ..., x17, y17, v17]", self.hint)
            if require_count and record.num_keypoints is None:
                raise self.fail(index, "missing field 'num_keypoints'", self.hint)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
