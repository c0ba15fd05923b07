"""Sharded COCO scoring: matching split over image ranges, joined, accumulated once, equals one run."""

from __future__ import annotations

import numpy as np
import pytest

from visionflow.metrics import evaluate_coco
from visionflow.metrics.coco import evaluate_coco_in_shards
from visionflow.metrics.coco_data import load_detections, load_ground_truth
from visionflow.metrics.coco_match import image_shards
from visionflow.metrics.coco_synthetic import synthetic_coco

ARRAYS = ("stats", "precision", "recall", "scores")


def assert_identical(ours, reference) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(ours, name), getattr(reference, name), err_msg=name)


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
@pytest.mark.parametrize("seed, shards", [(0, 2), (1, 3), (2, 7), (3, 1000)])
def test_sharded_equals_whole_bit_for_bit(iou_type, seed, shards):
    """Adversarial inputs (score ties across images, crowd, area edges): ties are broken by image
    order, which the join in image order must keep."""
    gt, dt = synthetic_coco(seed=seed, images=25, categories=5, dets_per_image=30, gt_per_image=4,
                            iou_type=iou_type, adversarial=seed % 2 == 1)
    assert_identical(evaluate_coco_in_shards(gt, dt, iou_type, shards=shards, workers=1),
                     evaluate_coco(gt, dt, iou_type, workers=1))


def test_a_custom_shard_runner_gets_every_image_once_in_order():
    gt, dt = synthetic_coco(seed=5, images=40, categories=3, dets_per_image=10, gt_per_image=3)
    seen: list[range] = []

    def run_shards(ground_truth, detections, params, ranges):
        from visionflow.metrics.coco_match import match

        seen.extend(ranges)
        return [match(ground_truth, detections, params, 1, images) for images in reversed(ranges)][::-1]

    assert_identical(evaluate_coco_in_shards(gt, dt, "bbox", shards=4, run_shards=run_shards),
                     evaluate_coco(gt, dt, "bbox"))
    assert [i for r in seen for i in r] == list(range(40)) and len(seen) == 4


def test_image_shards_balance_the_work():
    gt, dt = synthetic_coco(seed=6, images=100, categories=3, dets_per_image=10, gt_per_image=3)
    ground_truth = load_ground_truth(gt, "bbox")
    detections = load_detections(dt, ground_truth)
    ranges = image_shards(ground_truth, detections, 4)
    assert [i for r in ranges for i in r] == list(range(100))
    assert all(15 <= len(r) <= 35 for r in ranges)
    assert image_shards(ground_truth, detections, 1) == [range(0, 100)]
    with pytest.raises(ValueError, match="shards must be >= 1"):
        image_shards(ground_truth, detections, 0)
