"""VOC average precision against an example worked out by hand.

Ground truth: image 1 has box A; image 2 has box B and a *difficult* box C. Five detections, in
descending score order:

    score  image  box                     outcome
    0.9    1      A exactly               TP  (matches A)
    0.8    2      C exactly               --  (matches difficult C: neither TP nor FP)
    0.7    1      A exactly               FP  (A already matched)
    0.6    2      far from everything     FP
    0.5    2      B shifted by 1 px       TP  (IoU 90/110 = 0.82 with B)

Two positives (A, B). cumulative TP 1 1 1 1 2, FP 0 0 1 2 2:
recall    0.5 0.5 0.5 0.5 1.0
precision 1.0 1.0 0.5 1/3 0.5

all-point: envelope 1 up to recall 0.5, then 0.5 up to recall 1 -> 0.5*1 + 0.5*0.5 = 0.75
11-point: recall >= 0.0..0.5 (6 thresholds) -> best precision 1; 0.6..1.0 (5) -> 0.5
          -> (6 + 2.5) / 11 = 0.772727...
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionflow.evaluation.voc import (
    ClassDetections,
    GroundTruthBoxes,
    average_precision,
    precision_recall,
    voc_average_precision,
)

A = [0, 0, 10, 10]
B = [0, 0, 10, 10]
C = [20, 20, 30, 30]


@pytest.fixture
def example():
    ground_truth = {
        1: GroundTruthBoxes(np.array([A], dtype=float)),
        2: GroundTruthBoxes(np.array([B, C], dtype=float), difficult=np.array([False, True])),
    }
    # given out of score order on purpose: matching must sort by score
    detections = ClassDetections(
        image_ids=np.array([2, 1, 2, 1, 2]),
        scores=np.array([0.5, 0.9, 0.6, 0.7, 0.8]),
        boxes=np.array([[1, 0, 11, 10], A, [50, 50, 60, 60], A, C], dtype=float),
    )
    return detections, ground_truth


def test_precision_recall_by_hand(example):
    recall, precision = precision_recall(*example)
    np.testing.assert_allclose(recall, [0.5, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(precision, [1.0, 1.0, 0.5, 1 / 3, 0.5])


def test_all_point_ap_by_hand(example):
    assert voc_average_precision(*example, method="all") == pytest.approx(0.75)


def test_eleven_point_ap_by_hand(example):
    assert voc_average_precision(*example, method="11point") == pytest.approx(8.5 / 11)


def test_stricter_iou_turns_the_shifted_box_into_a_miss(example):
    # IoU 0.82 < 0.85: the last detection becomes a FP, recall stops at 0.5
    recall, _ = precision_recall(*example, iou_threshold=0.85)
    assert recall[-1] == pytest.approx(0.5)
    assert voc_average_precision(*example, iou_threshold=0.85) == pytest.approx(0.5)


def test_perfect_detector_scores_one():
    boxes = np.array([A, C], dtype=float)
    detections = ClassDetections(np.array([7, 7]), np.array([0.9, 0.8]), boxes)
    ground_truth = {7: GroundTruthBoxes(boxes)}
    assert voc_average_precision(detections, ground_truth, method="all") == 1.0
    # the devkit adds 1/11 eleven times: 1.0000000000000002
    assert voc_average_precision(detections, ground_truth, method="11point") == pytest.approx(1.0)


def test_no_positives_gives_nan_and_bad_method_raises(example):
    detections, _ = example
    only_difficult = {2: GroundTruthBoxes(np.array([C], dtype=float), difficult=np.array([True]))}
    assert math.isnan(voc_average_precision(detections, only_difficult))
    with pytest.raises(ValueError, match="method"):
        average_precision(np.array([1.0]), np.array([1.0]), method="101point")


def devkit_eleven_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """``voc_ap(rec, prec, use_07_metric=True)`` of the VOC devkit's Python port (voc_eval.py)."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = 0 if np.sum(recall >= t) == 0 else np.max(precision[recall >= t])
        ap = ap + p / 11.0
    return ap


@pytest.mark.parametrize("seed", range(3))
def test_eleven_point_ap_equals_the_devkit_bit_for_bit(seed):
    # the devkit sums p / 11 threshold by threshold; a mean of the eleven p rounds otherwise
    # (a perfect detector: 1.0000000000000002 there, 1.0 by np.mean)
    rng = np.random.default_rng(seed)
    recall = np.sort(rng.integers(0, 8, 20)) / 7
    precision = rng.integers(1, 10, 20) / 9
    expected = devkit_eleven_point(recall, precision)
    assert average_precision(recall, precision, method="11point") == expected
    assert average_precision(np.ones(3), np.ones(3), method="11point") == devkit_eleven_point(
        np.ones(3), np.ones(3)
    )
