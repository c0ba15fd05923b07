"""Sharded COCO evaluation (hotcoco StreamingEval states merged in shard order) equals one process
bit for bit, on adversarial inputs (score ties across images, crowd regions, area edges)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.coco_data import synthetic_coco
from visionflow.errors import DataError
from visionflow.evaluation.coco import evaluate_coco
from visionflow.evaluation.coco_input import load_ground_truth
from visionflow.evaluation.coco_results import load_results
from visionflow.evaluation.coco_shards import evaluate_coco_in_shards, match_shard, split

ARRAYS = ("stats", "precision", "recall", "scores")


def assert_identical(ours, reference) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(ours, name), getattr(reference, name), err_msg=name)


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
@pytest.mark.parametrize("seed, shards", [(0, 2), (1, 3), (2, 7), (3, 1000)])
def test_sharded_equals_whole_bit_for_bit(iou_type, seed, shards):
    gt, dt = synthetic_coco(
        seed=seed,
        images=25,
        categories=5,
        dets_per_image=30,
        gt_per_image=4,
        iou_type=iou_type,
        adversarial=seed % 2 == 1,
    )
    assert_identical(
        evaluate_coco_in_shards(gt, dt, iou_type, shards=shards), evaluate_coco(gt, dt, iou_type)
    )


def test_a_custom_shard_runner_gets_every_image_once_in_order():
    gt, dt = synthetic_coco(seed=5, images=40, categories=3, dets_per_image=10, gt_per_image=3)
    seen: list[int] = []

    def run_shards(shards):
        seen.extend(image["id"] for shard in shards for image in shard.images)
        return [match_shard(shard) for shard in reversed(shards)][::-1]

    assert_identical(
        evaluate_coco_in_shards(gt, dt, "bbox", shards=4, run_shards=run_shards),
        evaluate_coco(gt, dt, "bbox"),
    )
    assert seen == sorted(image["id"] for image in gt["images"])


def test_split_keeps_each_image_with_its_annotations_and_detections():
    gt, dt = synthetic_coco(seed=6, images=100, categories=3, dets_per_image=10, gt_per_image=3)
    ground_truth = load_ground_truth(gt, "bbox")
    shards = split(ground_truth, load_results(dt, ground_truth), 4)
    assert [len(shard.images) for shard in shards] == [25, 25, 25, 25]
    for shard in shards:
        ids = {image["id"] for image in shard.images}
        assert {a["image_id"] for a in shard.annotation_dicts()} <= ids
        assert set(shard.detections[:, 0].astype(int).tolist()) <= ids
    assert sum(len(shard.annotation_dicts()) for shard in shards) == len(gt["annotations"])
    assert sum(len(shard.detections) for shard in shards) == len(dt)
    with pytest.raises(DataError, match="--shards: must be >= 1"):
        evaluate_coco_in_shards(gt, dt, "bbox", shards=0)


def test_more_shards_than_images_makes_one_shard_per_image():
    gt, dt = synthetic_coco(seed=7, images=5, categories=2, dets_per_image=4, gt_per_image=2)
    counts: list[int] = []

    def run_shards(shards):
        counts.append(len(shards))
        return [match_shard(shard) for shard in shards]

    result = evaluate_coco_in_shards(gt, dt, "bbox", shards=10**20, run_shards=run_shards)
    assert counts == [5]
    assert_identical(result, evaluate_coco(gt, dt, "bbox"))
