"""Checks over COCO records held as numpy columns; a failure names the first bad record.

    checks = ColumnChecks("gt.json", "annotation", hint, image_ids=ann_images, ids=ann_ids)
    checks.fail_where(ann_ids == 0, lambda i: "annotation id 0")   # one vectorized test
    # -> DataError("gt.json: annotation #12 (image_id 42, id 0): annotation id 0")

Every test runs over whole columns at once; only when one fails is the record looked up, by its
position. The record checks that need the decoded values themselves (masks, keypoints, a box
that is not 4 numbers) walk the records, and only those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from visionflow.errors import DataError, SpecError
from visionflow.evaluation.coco_io import (
    ID_HINT,
    id_range_problem,
    index_of,
    outside_id_range,
    short,
)

#: pycocotools' OKS sigmas of COCO's 17 person keypoints
COCO_SIGMAS = (
    *(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072),
    *(0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
)
NUM_KEYPOINTS = len(COCO_SIGMAS)
SIGMAS_HINT = (
    "give one sigma per keypoint, e.g. 0.05 each (OKS: how far a point may stray relative to "
    "the object's size)"
)
MASK_HINT = (
    "a 'segmentation' is polygons [[x1, y1, x2, y2, ...], ...] or RLE "
    "{size: [height, width], counts: ...} of its image's size"
)


class ColumnChecks:
    """Checks over the columns [N] of one list of records (``kind``: 'annotation' or 'detection')
    of ``source``; ``image_ids`` [N] and ``ids`` [N] (annotations) name a failing record."""

    def __init__(
        self,
        source: str,
        kind: str,
        hint: str,
        image_ids: np.ndarray,
        ids: np.ndarray | None = None,
        offset: int = 0,
    ):
        self.source, self.kind, self.hint, self.offset = source, kind, hint, offset
        self.image_ids, self.ids = image_ids, ids

    def fail(self, index: int, problem: str, hint: str | None = None) -> DataError:
        details = f"image_id {self.image_ids[index]}" + (
            f", id {self.ids[index]}" if self.ids is not None else ""
        )
        return DataError(
            f"{self.source}: {self.kind} #{index + self.offset} ({details}): {problem}",
            hint=hint or self.hint,
        )

    def fail_where(
        self, bad: np.ndarray, problem: Callable[[int], str], hint: str | None = None
    ) -> None:
        """``bad`` [N] bool; the first True record fails with ``problem(its index)``."""
        if bad.any():
            index = int(np.argmax(bad))
            raise self.fail(index, problem(index), hint)

    def lookup(self, ids: np.ndarray, key: str, sorted_ids: np.ndarray, problem: str) -> np.ndarray:
        """Positions [N] of ``ids`` (the records' ``key``) in ``sorted_ids``; an unknown id fails."""
        positions, found = index_of(sorted_ids, ids)
        self.fail_where(~found, lambda i: f"{key} {ids[i]} {problem}")
        return positions

    def check_id_range(self, key: str, ids: np.ndarray) -> None:
        """Every one of ``ids`` [N] (the records' ``key``) is from 0 to ``coco_io.ID_LIMIT``."""
        self.fail_where(outside_id_range(ids), lambda i: id_range_problem(key, ids[i]), ID_HINT)

    def check_unique(self, key: str, ids: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
        if len(repeated):
            index = int(order[repeated[0] + 1])
            raise self.fail(
                index,
                f"{key} {ids[index]} is used twice",
                hint="every annotation needs its own 'id'",
            )

    def check_scores(self, scores: np.ndarray) -> None:
        self.fail_where(
            ~np.isfinite(scores), lambda i: f"'score' is {scores[i]}, not a finite number"
        )

    def check_boxes(self, boxes: np.ndarray, image_hw: np.ndarray) -> None:
        """``boxes`` [N, 4] XYWH, ``image_hw`` [N, 2] of each record's image (-1: unknown): finite,
        no negative width or height, not wholly outside the image. (Whole-array tests first: the
        per-record masks are built only to find a failing record.)"""
        if not np.isfinite(boxes).all():
            self.fail_where(
                ~np.isfinite(boxes).all(axis=1),
                lambda i: f"'bbox' {boxes[i].tolist()} is not finite",
            )
        if (boxes[:, 2:] < 0).any():
            self.fail_where(
                (boxes[:, 2:] < 0).any(axis=1),
                lambda i: f"'bbox' {boxes[i].tolist()} has a negative width or height",
                "COCO boxes are [x, y, width, height] with width, height >= 0",
            )
        x, y, w, h = boxes.T
        height, width = image_hw.T
        outside = (height >= 0) & ((x >= width) | (y >= height) | (x + w <= 0) | (y + h <= 0))
        self.fail_where(
            outside,
            lambda i: (
                f"'bbox' {boxes[i].tolist()} lies wholly outside its {width[i]}x{height[i]} image"
            ),
            "boxes are [x, y, width, height] in pixels of their "
            "image; check the image ids and the box format",
        )

    def boxes_of(self, values: Sequence[Any]) -> np.ndarray:
        """The records' ``bbox`` values as [N, 4]; one that is missing or not 4 numbers fails."""
        try:
            boxes = np.array(values, dtype=np.float64).reshape(-1, 4)
        except (ValueError, TypeError):
            boxes = None
        if boxes is None or len(boxes) != len(values):
            for index, value in enumerate(values):
                if value is None or len(value) != 4:
                    raise self.fail(index, f"'bbox' must be [x, y, width, height], got {value!r}")
        return boxes

    def check_masks(self, segmentations: Sequence[Any], image_hw: np.ndarray) -> None:
        """Every segmentation is polygons or RLE; an RLE's size is its image's (height, width)."""
        for index, segmentation in enumerate(segmentations):
            self._check_mask(index, segmentation, image_hw[index])

    def _check_mask(self, index: int, segmentation: Any, height_width: np.ndarray) -> None:
        if isinstance(segmentation, list):
            if (
                not all(
                    isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation
                )
                or not segmentation
            ):
                raise self.fail(
                    index,
                    "'segmentation' polygons must be lists of at least 3 (x, y) points",
                    MASK_HINT,
                )
            if height_width[0] < 0:
                raise self.fail(
                    index,
                    "its image has no integer 'height' and 'width', needed to rasterize polygons",
                    "add 'height' and 'width' to every entry of the GT's 'images'",
                )
            return
        if not isinstance(segmentation, dict) or not isinstance(
            segmentation.get("counts"), (str, list)
        ):
            raise self.fail(
                index, f"'segmentation' is not polygons or RLE ({short(segmentation)})", MASK_HINT
            )
        size = segmentation.get("size")
        if not (
            isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)
        ):
            raise self.fail(index, f"RLE 'size' must be [height, width], got {size!r}", MASK_HINT)
        if height_width[0] >= 0 and size != height_width.tolist():
            raise self.fail(
                index,
                f"the mask is {size[0]}x{size[1]} (height x width) but its image is "
                f"{height_width[0]}x{height_width[1]}",
                MASK_HINT,
            )

    def check_keypoints(
        self, keypoints: Sequence[Any], counts: Sequence[Any] | None, number: int = NUM_KEYPOINTS
    ) -> None:
        """``number`` finite (x, y, v) triples per record (COCO's 17, or one per custom OKS sigma);
        ``counts`` (GT): each ``num_keypoints`` present."""
        length = 3 * number
        for index, points in enumerate(keypoints):
            if points is None or len(points) != length or not all(map(np.isfinite, points)):
                origin = "" if number == NUM_KEYPOINTS else f", one per keypoint_sigmas ({number})"
                raise self.fail(
                    index,
                    f"'keypoints' must be {length} finite numbers "
                    f"[x1, y1, v1, ..., x{number}, y{number}, v{number}]{origin}",
                )
            if counts is not None and counts[index] is None:
                raise self.fail(index, "missing field 'num_keypoints'")


def checked_sigmas(sigmas: Sequence[float], name: str = "keypoint_sigmas") -> tuple[float, ...]:
    """The OKS ``sigmas`` [K] as floats: one finite positive number per keypoint, else a
    SpecError naming the argument ``name`` and what is wrong (not a list, empty, which value)."""
    try:
        items = list(sigmas)
    except TypeError:
        raise SpecError(
            f"{name}: need a list of finite positive numbers, one per keypoint, got {sigmas!r}",
            hint=SIGMAS_HINT,
        ) from None
    if not items:
        raise SpecError(
            f"{name}: empty; need finite positive numbers, one per keypoint", hint=SIGMAS_HINT
        )
    values = tuple(map(_finite_positive, items))
    for index, (item, value) in enumerate(zip(items, values)):
        if value is None:
            raise SpecError(
                f"{name}: value #{index + 1} ({item!r}) is not a finite positive number",
                hint=SIGMAS_HINT,
            )
    return values


def _finite_positive(item: Any) -> float | None:
    """``item`` as a float when it is a finite positive number (or its text), else None."""
    try:
        value = float(item)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
