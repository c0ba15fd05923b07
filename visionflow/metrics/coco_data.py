"""COCO ground truth and detections as numpy columns, built with pycocotools' rules.

``load_ground_truth`` reads what ``COCO(gt)`` + ``COCOeval._prepare`` use; ``load_detections``
replicates ``COCO.loadRes``: which branch applies is decided by the *first* result (a non-empty
``bbox``, else ``segmentation``, else ``keypoints``), and that branch sets every detection's area
(box ``w*h``, mask area, or the keypoints' extent). See docs/coco_evaluation.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from visionflow.errors import DataError
from visionflow.metrics.coco_io import Records, gc_paused, index_of, read_json
from visionflow.metrics.coco_masks import image_sizes, mask_areas, to_rles
from visionflow.metrics.coco_params import NUM_KEYPOINTS, params_for

GT_HINT = ("a COCO ground truth is an object with 'images' [{id, height, width}], 'categories' [{id, name}] "
           "and 'annotations' [...]")
_GT_GEOMETRY = {"bbox": "bbox [x, y, w, h]", "segm": "segmentation (polygons or RLE)",
                "keypoints": "bbox [x, y, w, h], keypoints [x1, y1, v1, ..., x17, y17, v17], num_keypoints"}
_DT_GEOMETRY = {"bbox": "bbox [x, y, w, h]", "segm": "segmentation (RLE or polygons; for boxes use iou type bbox)",
                "keypoints": "keypoints [x1, y1, v1, ..., x17, y17, v17]"}


def annotation_hint(iou_type: str) -> str:
    return f"{iou_type} GT annotations need id, image_id, category_id, {_GT_GEOMETRY[iou_type]}, area, iscrowd"


def detection_hint(iou_type: str) -> str:
    return f"{iou_type} results are a JSON list of {{image_id, category_id, score, {_DT_GEOMETRY[iou_type]}}}"


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth for one iou type. Images [I] and categories [K] sorted by id; annotations [G]
    in file order. Only the geometry of ``iou_type`` is loaded: ``boxes`` [G, 4] XYWH (bbox and
    keypoints), ``masks`` (segm: G RLE dicts), ``keypoints`` [G, 3 * 17] (keypoints)."""

    source: str
    iou_type: str
    image_ids: np.ndarray
    image_hw: np.ndarray  # [I, 2] height, width; -1 where an image does not say
    category_ids: np.ndarray
    category_names: tuple[str, ...]
    ann_ids: np.ndarray
    image_index: np.ndarray
    category_index: np.ndarray
    area: np.ndarray
    crowd: np.ndarray
    ignore: np.ndarray
    boxes: np.ndarray | None = None
    masks: list[dict] | None = None
    keypoints: np.ndarray | None = None


@dataclass(frozen=True)
class Detections:
    """Detections [N] in results order, with the geometry of the iou type (see ``GroundTruth``)."""

    source: str
    image_index: np.ndarray
    category_index: np.ndarray
    scores: np.ndarray
    area: np.ndarray
    boxes: np.ndarray | None = None
    masks: list[dict] | None = None
    keypoints: np.ndarray | None = None


def load_ground_truth(gt: dict | str | Path, iou_type: str) -> GroundTruth:
    """Ground truth from a COCO dataset dict or the path of its JSON file."""
    params_for(iou_type)  # rejects an unknown iou type
    source = "<ground truth>" if isinstance(gt, dict) else str(gt)
    return _parse_loaded(gt, dict, "ground truth", lambda data: _ground_truth(data, source, iou_type))


def _parse_loaded(value: Any, loaded_type: type, kind: str, parse: Any) -> Any:
    """``parse(data)`` where ``data`` is ``value`` itself when already a ``loaded_type``, else the
    JSON file it names; the garbage collector stays paused meanwhile (millions of small objects)."""
    with gc_paused():
        data = value if isinstance(value, loaded_type) else read_json(value, kind)
        parsed = parse(data)
        del data  # freed by reference counting, before the collector resumes
    return parsed


def _ground_truth(dataset: Any, source: str, iou_type: str) -> GroundTruth:
    if not isinstance(dataset, dict):
        raise DataError(f"{source}: a COCO ground truth must be a JSON object, not {type(dataset).__name__}",
                        hint=GT_HINT)
    images, categories, anns = (_section(dataset, key, source, iou_type)
                                for key in ("images", "categories", "annotations"))
    image_ids = np.unique(images.integers("id"))
    image_hw = image_sizes(images, image_ids)
    category_ids, category_names = _categories(categories)
    ann_ids = anns.integers("id")
    _check_unique(anns, ann_ids)
    image_index = _lookup(anns, "image_id", image_ids, "is not in the ground truth's 'images'")
    category_index = _lookup(anns, "category_id", category_ids, "is not in the ground truth's 'categories'")
    iscrowd = anns.numbers("iscrowd")
    ignore = iscrowd != 0  # pycocotools: ignore = iscrowd (truthiness); an 'ignore' key is overwritten
    boxes = _boxes(anns) if iou_type in ("bbox", "keypoints") else None
    masks = to_rles(anns, anns.values("segmentation"), image_index, image_hw) if iou_type == "segm" else None
    keypoints = anns.vectors("keypoints", 3 * NUM_KEYPOINTS) if iou_type == "keypoints" else None
    if iou_type == "keypoints":  # and a person without labelled keypoints is ignored too
        ignore = ignore | (anns.numbers("num_keypoints") == 0)
    return GroundTruth(source, iou_type, image_ids, image_hw, category_ids, category_names, ann_ids, image_index,
                       category_index, anns.numbers("area"), crowd=np.trunc(iscrowd) != 0, ignore=ignore,
                       boxes=boxes, masks=masks, keypoints=keypoints)


def _section(dataset: dict, key: str, source: str, iou_type: str) -> Records:
    if key not in dataset:
        raise DataError(f"{source}: the ground truth has no {key!r}", hint=GT_HINT)
    items = dataset[key]
    if not isinstance(items, list):
        raise DataError(f"{source}: {key!r} must be a list, not {type(items).__name__}", hint=GT_HINT)
    kind = {"images": "image", "categories": "category", "annotations": "annotation"}[key]
    return Records(source, kind, items, annotation_hint(iou_type) if kind == "annotation" else GT_HINT)


def _categories(categories: Records) -> tuple[np.ndarray, tuple[str, ...]]:
    ids = categories.integers("id")
    names = {int(i): str(item.get("name", i)) for i, item in zip(ids, categories.items)}
    unique = np.unique(ids)
    return unique, tuple(names[int(i)] for i in unique)


def _check_unique(anns: Records, ann_ids: np.ndarray) -> None:
    order = np.argsort(ann_ids, kind="stable")
    repeated = np.flatnonzero(ann_ids[order][1:] == ann_ids[order][:-1])
    if len(repeated):
        index = int(order[repeated[0] + 1])
        raise anns.error(index, f"annotation id {int(ann_ids[index])} is used twice",
                         hint="every annotation needs its own 'id' (pycocotools keeps only the last of a repeated id)")


def _lookup(records: Records, key: str, sorted_ids: np.ndarray, problem: str) -> np.ndarray:
    """Positions [N] of each record's ``key`` in ``sorted_ids``; an unknown id names the record."""
    ids = records.integers(key)
    positions, found = index_of(sorted_ids, ids)
    if not found.all():
        index = int(np.argmin(found))
        raise records.error(index, f"{key} {int(ids[index])} {problem}")
    return positions


def _boxes(records: Records, values: list[Any] | None = None) -> np.ndarray:
    """XYWH boxes [N, 4]; a negative width or height names the record."""
    boxes = records.vectors("bbox", 4, values)
    negative = (boxes[:, 2:] < 0).any(axis=1)
    if negative.any():
        index = int(np.argmax(negative))
        raise records.error(index, f"'bbox' {boxes[index].tolist()} has a negative width or height",
                            hint="COCO boxes are [x, y, width, height] with width, height >= 0")
    return boxes


def load_detections(results: list | str | Path, gt: GroundTruth, source: str | None = None) -> Detections:
    """Detections from a list of result dicts or the path of a results JSON file (``COCO.loadRes``)."""
    source = source or ("<results>" if isinstance(results, list) else str(results))
    return _parse_loaded(results, list, "results", lambda items: _detections(items, gt, source))


def _detections(items: Any, gt: GroundTruth, source: str) -> Detections:
    if not isinstance(items, list):
        raise DataError(f"{source}: results must be a JSON list of detections, not {type(items).__name__}",
                        hint=detection_hint(gt.iou_type))
    records = Records(source, "detection", items, detection_hint(gt.iou_type))
    if not items:
        empty = np.zeros(0, dtype=np.int64)
        return Detections(source, empty, empty, np.zeros(0), np.zeros(0), boxes=np.zeros((0, 4)), masks=[],
                          keypoints=np.zeros((0, 3 * NUM_KEYPOINTS)))
    image_index = _lookup(records, "image_id", gt.image_ids,
                          f"is not an image of the ground truth {gt.source} (pycocotools asserts the same)")
    category_index = _lookup(records, "category_id", gt.category_ids,
                             f"is not a category of the ground truth {gt.source}")
    scores = records.numbers("score")
    area, geometry = _geometry(records, gt, image_index, _loadres_branch(records))
    return Detections(source, image_index, category_index, scores, area, **geometry)


def _loadres_branch(records: Records) -> str:
    """The branch of ``COCO.loadRes`` that the first result selects for all of them."""
    first = records.items[0]
    if not isinstance(first, dict):
        raise records.error(0, f"is not a JSON object ({type(first).__name__})")
    if "bbox" in first and first["bbox"] != []:
        return "bbox"
    for branch in ("segmentation", "keypoints"):
        if branch in first:
            return branch
    raise records.error(0, "has none of 'bbox', 'segmentation', 'keypoints'")


def _geometry(records: Records, gt: GroundTruth, image_index: np.ndarray,
              branch: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(area [N] as loadRes sets it, the geometry columns: boxes, masks, keypoints, or None)."""
    iou_type = gt.iou_type
    boxes = masks = keypoints = None
    if iou_type == "segm" or branch == "segmentation":
        masks = to_rles(records, records.values("segmentation"), image_index, gt.image_hw)
    if iou_type == "keypoints" or branch == "keypoints":
        keypoints = _keypoints(records, iou_type)
    if branch == "bbox":
        boxes = _boxes(records)
        area = boxes[:, 2] * boxes[:, 3]
    elif branch == "segmentation":
        area = mask_areas(masks)
        if iou_type == "bbox":  # loadRes keeps a result's own 'bbox', else takes the mask's box
            mask_boxes = mask_utils.toBbox(masks).tolist()
            boxes = _boxes(records, [item.get("bbox", box) for item, box in zip(records.items, mask_boxes)])
    else:
        boxes, area = _keypoint_extent(keypoints)
    return area, {"boxes": boxes, "masks": masks, "keypoints": keypoints}


def _keypoints(records: Records, iou_type: str) -> np.ndarray:
    """[N, 3k] keypoints: the 17 COCO person keypoints for iou type 'keypoints', else any k, the same
    for every result (only their extent is used)."""
    values = records.values("keypoints")
    length = 3 * NUM_KEYPOINTS if iou_type == "keypoints" else len(values[0]) if isinstance(values[0], list) else 0
    if length == 0 or length % 3:
        raise records.error(0, "'keypoints' must be a list [x1, y1, v1, x2, y2, v2, ...]")
    return records.vectors("keypoints", length, values)


def _keypoint_extent(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """loadRes for keypoint results: (boxes [N, 4] XYWH around the points, area [N] of those boxes)."""
    x, y = keypoints[:, 0::3], keypoints[:, 1::3]
    x0, x1, y0, y1 = x.min(axis=1), x.max(axis=1), y.min(axis=1), y.max(axis=1)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1), (x1 - x0) * (y1 - y0)
