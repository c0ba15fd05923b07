"""Pascal VOC average precision of one class, as the VOC devkit computes it.

    ap = voc_average_precision(detections, ground_truth, iou_threshold=0.5, method="all")

Detections are matched greedily in descending score order (ties keep their input order): a
detection whose best-overlapping ground-truth box (IoU strictly above the threshold) is unmatched
is a true positive; a second match of the same box is a false positive; a match of a ``difficult``
box counts as neither. Recall is over the non-difficult boxes.

``method="11point"`` averages the best precision at recall >= 0, 0.1, ..., 1 (VOC2007);
``method="all"`` is the area under the monotone precision envelope (VOC2010 and later).

Boxes are XYXY in continuous pixel coordinates, so widths are ``x2 - x1`` (the devkit's ``+ 1``
belongs to its inclusive integer pixel indices, which the datamodules convert away).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["11point", "all"]


@dataclass(frozen=True)
class ClassDetections:
    """The detections of one class: ``image_ids`` int [D], ``scores`` float [D], ``boxes`` [D, 4]."""

    image_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class GroundTruthBoxes:
    """The ground-truth boxes of one class in one image: ``boxes`` [M, 4], ``difficult`` bool [M]."""

    boxes: np.ndarray
    difficult: np.ndarray | None = None

    def __post_init__(self) -> None:
        difficult = (
            np.zeros(len(self.boxes), dtype=bool)
            if self.difficult is None
            else np.asarray(self.difficult, dtype=bool)
        )
        if difficult.shape != (len(self.boxes),):
            raise ValueError(f"difficult has shape {difficult.shape}, boxes {np.shape(self.boxes)}")
        object.__setattr__(self, "difficult", difficult)

    @property
    def positives(self) -> int:
        return int((~self.difficult).sum())


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU [M] of one XYXY ``box`` [4] with ``boxes`` [M, 4]."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=1)
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    union = (box[2:] - box[:2]).prod() + areas - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def match_detections(
    detections: ClassDetections,
    ground_truth: Mapping[int, GroundTruthBoxes],
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``(true_positive [D], false_positive [D])`` as 0/1 floats, in descending score order."""
    order = np.argsort(-np.asarray(detections.scores, dtype=np.float64), kind="stable")
    matched = {
        image_id: np.zeros(len(gt.boxes), dtype=bool) for image_id, gt in ground_truth.items()
    }
    true_positive = np.zeros(len(order))
    false_positive = np.zeros(len(order))
    for rank, index in enumerate(order):
        image_id = int(detections.image_ids[index])
        gt = ground_truth.get(image_id)
        if gt is None or len(gt.boxes) == 0:
            false_positive[rank] = 1
            continue
        overlaps = box_iou(
            np.asarray(detections.boxes[index], dtype=np.float64),
            np.asarray(gt.boxes, dtype=np.float64),
        )
        best = int(np.argmax(overlaps))
        if overlaps[best] <= iou_threshold:
            false_positive[rank] = 1
        elif gt.difficult[best]:
            continue
        elif matched[image_id][best]:
            false_positive[rank] = 1
        else:
            matched[image_id][best] = True
            true_positive[rank] = 1
    return true_positive, false_positive


def precision_recall(
    detections: ClassDetections,
    ground_truth: Mapping[int, GroundTruthBoxes],
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``(recall [D], precision [D])`` after each detection in descending score order."""
    positives = sum(gt.positives for gt in ground_truth.values())
    true_positive, false_positive = match_detections(detections, ground_truth, iou_threshold)
    hits, misses = np.cumsum(true_positive), np.cumsum(false_positive)
    recall = hits / positives if positives else np.full(len(hits), np.nan)
    precision = hits / np.maximum(hits + misses, np.finfo(np.float64).eps)
    return recall, precision


def average_precision(recall: np.ndarray, precision: np.ndarray, method: Method = "all") -> float:
    """Area under the precision-recall curve given by ``recall`` [D] (non-decreasing) and
    ``precision`` [D]: the VOC2007 11-point average or the all-point envelope area."""
    if method == "11point":
        thresholds = np.arange(0.0, 1.1, 0.1)  # the devkit's own expression
        total = 0.0
        for t in thresholds:  # summed as the devkit does, p / 11 at a time: a mean rounds otherwise
            total = total + precision[recall >= t].max(initial=0.0) / 11.0
        return float(total)
    if method != "all":
        raise ValueError(f"method must be '11point' or 'all', got {method!r}")
    recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def voc_average_precision(
    detections: ClassDetections,
    ground_truth: Mapping[int, GroundTruthBoxes],
    iou_threshold: float = 0.5,
    method: Method = "all",
) -> float:
    """AP of one class; NaN when the class has no non-difficult ground-truth box."""
    if not sum(gt.positives for gt in ground_truth.values()):
        return float("nan")
    recall, precision = precision_recall(detections, ground_truth, iou_threshold)
    return average_precision(recall, precision, method)
