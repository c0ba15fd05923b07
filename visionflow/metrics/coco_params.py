"""The evaluation settings of pycocotools' ``Params``, as constants, per iou type.

The thresholds are built with the very expressions pycocotools uses (``np.linspace``, not
``np.arange``), so comparisons such as ``iou >= 0.75`` see the same doubles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionflow.errors import DataError

IOU_TYPES = ("bbox", "segm", "keypoints")

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # [T=10]
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # [R=101]
KEYPOINT_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                            .89, .89]) / 10.0  # [17], the COCO person keypoints
NUM_KEYPOINTS = len(KEYPOINT_SIGMAS)


@dataclass(frozen=True)
class CocoParams:
    """Area ranges [A, 2] (inclusive bounds), their labels, and the maxDets settings [M], sorted."""

    iou_type: str
    area_ranges: np.ndarray
    area_labels: tuple[str, ...]
    max_dets: tuple[int, ...]

    @property
    def stat_names(self) -> tuple[str, ...]:
        return KEYPOINT_STAT_NAMES if self.iou_type == "keypoints" else DETECTION_STAT_NAMES


DETECTION_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                        "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

_DETECTION = CocoParams("bbox", np.array([[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2],
                                          [96 ** 2, 1e5 ** 2]], dtype=np.float64),
                        ("all", "small", "medium", "large"), (1, 10, 100))
_KEYPOINTS = CocoParams("keypoints", np.array([[0 ** 2, 1e5 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]],
                                              dtype=np.float64),
                        ("all", "medium", "large"), (20,))


def params_for(iou_type: str) -> CocoParams:
    """The pycocotools defaults for ``iou_type`` ('bbox', 'segm' or 'keypoints')."""
    if iou_type == "keypoints":
        return _KEYPOINTS
    if iou_type in ("bbox", "segm"):
        return CocoParams(iou_type, _DETECTION.area_ranges, _DETECTION.area_labels, _DETECTION.max_dets)
    raise DataError(f"unknown iou type {iou_type!r}", hint="use one of: " + ", ".join(IOU_TYPES))
