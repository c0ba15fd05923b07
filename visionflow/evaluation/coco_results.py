"""COCO results (detections), checked record by record before the engine sees them.

    gt = load_ground_truth("instances_val2017.json", "bbox")   # coco_input -> GroundTruth
    dt = load_results("detections.json", gt)                   # -> Results

A box results file takes a fast path (``coco_box_results``: decoded a piece at a time into a
record type that admits only well-formed box results, a big file by several processes at once).
A file that does not fit, and every mask or keypoint file, is decoded whole with lenient types,
whose checks name the first bad record. The checks then run over whole columns; every problem is
one ``DataError`` naming the file and the record (``dt.json: detection #12 (image_id 42):
image_id 42 is not an image of the ground truth gt.json``): missing fields, wrong types, unknown
image or category ids, scores that are not finite, negative boxes, boxes wholly outside their
image, masks whose size is not their image's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from visionflow.evaluation.coco_box_results import (
    BoxResultsDecoding,
    engine_table,
    results_source,
)
from visionflow.evaluation.coco_checks import ColumnChecks
from visionflow.evaluation.coco_input import GroundTruth
from visionflow.evaluation.coco_io import contents_of, decode_or_fail, gc_paused, record_column

__all__ = ["RESULTS_HINT", "Results", "decoding", "load_results"]

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


@dataclass(frozen=True)
class Results:
    """Checked results [N]: each one's image id, and for bbox ``columns`` [N, 7] float64 (image_id,
    x, y, w, h, score, category_id), the form ``hotcoco.COCO.load_res`` takes; for masks and
    keypoints the ``records`` themselves (the engine reads those from the records)."""

    source: str
    image_ids: np.ndarray
    columns: np.ndarray | None
    records: list[Detection] | None


def load_results(
    results: list | str | Path | BoxResultsDecoding,
    gt: GroundTruth,
    source: str | None = None,
    processes: int = 1,
) -> Results:
    """Results from a list of result dicts, the path of a results JSON file, or a box results
    file whose decoding started earlier (:func:`decoding`). ``processes``: decode a big box
    results file in this many processes at once (:class:`BoxResultsDecoding`)."""
    if gt.iou_type != "bbox":
        source = results_source(results, source)
        with gc_paused():
            records = decode_or_fail(
                contents_of(results, "results"), list[Detection], source, RESULTS_HINT
            )
            return _checked_records(records, gt, source)
    if isinstance(results, BoxResultsDecoding):
        return _checked_box_results(results, gt)
    with BoxResultsDecoding(results, processes, source) as started:
        return _checked_box_results(started, gt)


def decoding(
    results: list | str | Path, iou_type: str, processes: int, gt: Any = None
) -> contextlib.AbstractContextManager[Any]:
    """A context whose value :func:`load_results` takes in place of ``results``: for a box
    results file and several ``processes``, its decoding started now (forked children decode
    while this process reads the ground truth ``gt``, when it is a file); else ``results``."""
    if iou_type == "bbox" and processes > 1 and isinstance(results, (str, Path)):
        return BoxResultsDecoding(results, processes, first_bytes=_size(gt))
    return contextlib.nullcontext(results)


def _size(path: Any) -> int:
    """The size in bytes of the file at ``path`` (0 for anything else; its loader names a
    missing file)."""
    try:
        return Path(path).stat().st_size if isinstance(path, (str, Path)) else 0
    except OSError:
        return 0


def _checked_box_results(started: BoxResultsDecoding, gt: GroundTruth) -> Results:
    """Box results whose every record decodes exactly, checked as columns; else the whole file
    decoded with lenient types, whose checks name the first bad record."""
    with gc_paused():
        columns = started.columns()
        if columns is not None:
            return _checked_boxes(*columns, gt, started.source)
        records = decode_or_fail(started.text(), list[Detection], started.source, RESULTS_HINT)
        return _checked_records(records, gt, started.source)


def _checked_boxes(
    image_ids: np.ndarray, category_ids: np.ndarray, table: np.ndarray, gt: GroundTruth, source: str
) -> Results:
    """Box results as columns, ``table`` [N, 7] as :func:`engine_table` makes it, checked."""
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
            source, image_ids, engine_table(image_ids, boxes, scores, category_ids), None
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
