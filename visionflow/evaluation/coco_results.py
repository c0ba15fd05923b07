"""COCO results (detections), checked record by record before the engine sees them.

    gt = load_ground_truth("instances_val2017.json", "bbox")   # coco_input -> GroundTruth
    dt = load_results("detections.json", gt)                   # -> Results

A box results file takes a fast path: it is decoded by msgspec a piece at a time (about 128 KiB of
JSON, some 1,400 records, cut between two records: ``coco_io.record_pieces``) into record types
that admit only well-formed records (every field present, ``bbox`` exactly 4 numbers), and each
piece becomes columns while its records are still in the CPU's cache, which takes a quarter less
time than decoding the whole file first. A file that does not fit, and every mask or keypoint
file, is decoded whole with lenient types, whose checks name the first bad record. The checks
then run over whole columns; every problem is one ``DataError`` naming the file and the record
(``dt.json: detection #12 (image_id 42): image_id 42 is not an image of the ground truth gt.json``):
missing fields, wrong types, unknown image or category ids, scores that are not finite, negative
boxes, boxes wholly outside their image, masks whose size is not their image's.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from visionflow.evaluation.coco_checks import ColumnChecks
from visionflow.evaluation.coco_input import Box, GroundTruth
from visionflow.evaluation.coco_io import (
    contents_of,
    decode_exact,
    decode_or_fail,
    gc_paused,
    record_column,
    record_pieces,
)

__all__ = ["RESULTS_HINT", "Results", "load_results"]

RESULTS_HINT = (
    "results are a JSON list of {image_id, category_id, score, bbox [x, y, w, h]} "
    "(+ segmentation RLE for segm, keypoints [x1, y1, v1, ...] for keypoints)"
)


class Detection(msgspec.Struct, gc=False, omit_defaults=True):
    """One result record of any iou type, as ``COCO.loadRes`` reads it."""

    image_id: int
    category_id: int
    score: float
    bbox: list[float] | None = None
    segmentation: Any = None
    keypoints: list[float] | None = None


class BoxDetection(msgspec.Struct, gc=False):
    """A bbox result as the fast path takes it."""

    image_id: int
    category_id: int
    score: float
    bbox: Box


@dataclass(frozen=True)
class Results:
    """Checked results [N]: each one's image id, and for bbox ``columns`` [N, 7] float64 (image_id,
    x, y, w, h, score, category_id), the form ``hotcoco.COCO.load_res`` takes; for masks and
    keypoints the ``records`` themselves (the engine reads those from the records)."""

    source: str
    image_ids: np.ndarray
    columns: np.ndarray | None
    records: list[Detection] | None


def load_results(results: list | str | Path, gt: GroundTruth, source: str | None = None) -> Results:
    """Results from a list of result dicts or the path of a results JSON file."""
    source = source or ("<results>" if isinstance(results, list) else str(results))
    with gc_paused():
        data = contents_of(results, "results")
        columns = _exact_box_columns(data) if gt.iou_type == "bbox" else None
        if columns is not None:
            return _checked_boxes(*columns, gt, source)
        records = decode_or_fail(data, list[Detection], source, RESULTS_HINT)
        del data
        return _checked_records(records, gt, source)


def _exact_box_columns(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(image_ids [N], category_ids [N], engine table [N, 7]) of box results whose every piece
    decodes as ``BoxDetection`` records; None where one does not (the lenient path then names
    the problem)."""
    parts = []
    for piece in record_pieces(data):
        records = decode_exact(piece, list[BoxDetection])
        if records is None:
            return None
        try:
            parts.append(_box_columns(records))
        except OverflowError:  # an id beyond int64
            return None
    return tuple(np.concatenate(columns) for columns in zip(*parts))


def _box_columns(records: list[BoxDetection]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image_ids [n], category_ids [n], engine table [n, 7]) of exactly decoded box results."""
    count = len(records)
    image_ids = np.fromiter(map(attrgetter("image_id"), records), np.int64, count)
    category_ids = np.fromiter(map(attrgetter("category_id"), records), np.int64, count)
    scores = np.fromiter(map(attrgetter("score"), records), np.float64, count)
    boxes = np.fromiter(
        chain.from_iterable(map(attrgetter("bbox"), records)), np.float64, 4 * count
    ).reshape(-1, 4)
    return image_ids, category_ids, _engine_table(image_ids, boxes, scores, category_ids)


def _engine_table(
    image_ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray, category_ids: np.ndarray
) -> np.ndarray:
    """[N, 7] float64 (image_id, x, y, w, h, score, category_id), the table
    ``hotcoco.COCO.load_res`` takes, from the columns [N] and ``boxes`` [N, 4]."""
    table = np.empty((len(scores), 7))
    table[:, 0], table[:, 1:5], table[:, 5], table[:, 6] = image_ids, boxes, scores, category_ids
    return table


def _checked_boxes(
    image_ids: np.ndarray, category_ids: np.ndarray, table: np.ndarray, gt: GroundTruth, source: str
) -> Results:
    """Box results as columns, ``table`` [N, 7] as :func:`_engine_table` makes it, checked."""
    checks = ColumnChecks(source, "detection", RESULTS_HINT, image_ids)
    image_hw = _checked_ids_and_scores(checks, gt, image_ids, category_ids, table[:, 5])
    checks.check_boxes(table[:, 1:5], image_hw)
    return Results(source, image_ids, table, None)


def _checked_records(records: list[Detection], gt: GroundTruth, source: str) -> Results:
    """Results decoded with lenient types (any iou type), checked."""
    image_ids = record_column(records, "image_id", source, "detection")
    category_ids = record_column(records, "category_id", source, "detection")
    scores = record_column(records, "score", source, "detection", np.float64)
    checks = ColumnChecks(source, "detection", RESULTS_HINT, image_ids)
    image_hw = _checked_ids_and_scores(checks, gt, image_ids, category_ids, scores)
    if gt.iou_type == "bbox":
        boxes = checks.boxes_of([r.bbox for r in records])
        checks.check_boxes(boxes, image_hw)
        return Results(
            source, image_ids, _engine_table(image_ids, boxes, scores, category_ids), None
        )
    if gt.iou_type == "segm":
        checks.check_masks([r.segmentation for r in records], image_hw)
    else:
        checks.check_keypoints([r.keypoints for r in records], None, gt.num_keypoints)
    return Results(source, image_ids, None, records)


def _checked_ids_and_scores(
    checks: ColumnChecks,
    gt: GroundTruth,
    image_ids: np.ndarray,
    category_ids: np.ndarray,
    scores: np.ndarray,
) -> np.ndarray:
    """Every image and category id is the ground truth's, every score finite; (height, width)
    [N, 2] of each result's image (-1 where the image does not say)."""
    checks.check_id_range("image_id", image_ids)
    checks.check_id_range("category_id", category_ids)
    positions = checks.lookup(
        image_ids, "image_id", gt.image_ids, f"is not an image of the ground truth {gt.source}"
    )
    checks.lookup(
        category_ids,
        "category_id",
        gt.category_ids,
        f"is not a category of the ground truth {gt.source}",
    )
    checks.check_scores(scores)
    return gt.image_hw[positions]
