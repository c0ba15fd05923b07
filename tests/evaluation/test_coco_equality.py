"""visionflow's COCO evaluation against pycocotools' COCOeval on randomized and hand-made inputs.

Every comparison runs pycocotools itself (``coco_reference``) on the same dicts: the stats and the
precision, recall and scores arrays must agree to 1e-9 (in practice they are bit-identical).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmarks.coco_data import synthetic_coco
from benchmarks.coco_reference import pycocotools_evaluate
from visionflow.evaluation.coco import evaluate_coco

TOLERANCE = 1e-9


def assert_matches_pycocotools(gt: dict, dt: list[dict], iou_type: str) -> None:
    ours = evaluate_coco(gt, dt, iou_type)
    reference = pycocotools_evaluate(gt, dt, iou_type)
    for name in ("stats", "precision", "recall", "scores"):
        expected, actual = getattr(reference, name), getattr(ours, name)
        assert actual.shape == expected.shape, name
        np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE, err_msg=name)


def case(seed: int, iou_type: str, adversarial: bool) -> tuple[dict, list[dict]]:
    """A small random input whose size and shape vary with the seed."""
    rng = np.random.default_rng(seed)
    return synthetic_coco(
        seed=seed,
        images=int(rng.integers(4, 30)),
        iou_type=iou_type,
        adversarial=adversarial,
        categories=int(rng.integers(1, 8)),
        dets_per_image=int(rng.integers(2, 40)),
        gt_per_image=float(rng.uniform(0.5, 8)),
    )


@pytest.mark.parametrize("seed", range(16))
def test_bbox_random(seed):
    assert_matches_pycocotools(*case(seed, "bbox", adversarial=seed % 2 == 1), "bbox")


@pytest.mark.parametrize("seed", range(10))
def test_segm_random(seed):
    assert_matches_pycocotools(*case(seed, "segm", adversarial=seed % 2 == 1), "segm")


@pytest.mark.parametrize("seed", range(10))
def test_keypoints_random(seed):
    assert_matches_pycocotools(*case(seed, "keypoints", adversarial=seed % 2 == 1), "keypoints")


def test_more_detections_than_max_dets_and_score_ties():
    gt, dt = synthetic_coco(seed=7, images=6, categories=2, dets_per_image=150, adversarial=True)
    per_image = np.bincount([d["image_id"] for d in dt])
    assert per_image.max() > 100 and len({d["score"] for d in dt}) < len(dt) / 10
    assert_matches_pycocotools(gt, dt, "bbox")


def test_ties_across_images_follow_image_order():
    """Equal scores in different images: pycocotools' mergesort keeps image-id order."""
    gt = tiny_gt(images=3)
    dt = [
        {"image_id": i, "category_id": 1, "bbox": box, "score": 0.5}
        for i in (3, 1, 2)
        for box in ([10, 10, 20, 20], [200, 200, 5, 5])
    ]
    assert_matches_pycocotools(gt, dt, "bbox")


def test_crowd_region_takes_many_detections():
    gt = tiny_gt(images=1)
    gt["annotations"] = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [10, 10, 20, 20],
            "area": 400,
            "iscrowd": 0,
        },
        {
            "id": 5,
            "image_id": 1,
            "category_id": 1,
            "bbox": [0, 0, 300, 300],
            "area": 90000,
            "iscrowd": 1,
        },
        {
            "id": 6,
            "image_id": 1,
            "category_id": 2,
            "bbox": [50, 50, 32, 32],
            "area": 32**2,
            "iscrowd": 0,
        },
    ]
    dt = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [40, 40, 50, 50], "score": 0.8},
        {"image_id": 1, "category_id": 1, "bbox": [100, 100, 10, 10], "score": 0.8},
        {"image_id": 1, "category_id": 2, "bbox": [50, 50, 32, 32], "score": 0.3},
        {"image_id": 1, "category_id": 2, "bbox": [52, 50, 96, 96], "score": 0.3},
    ]
    assert_matches_pycocotools(gt, dt, "bbox")


def test_segm_and_keypoint_results_without_boxes():
    gt, dt = synthetic_coco(seed=3, images=8, iou_type="segm", categories=3, dets_per_image=10)
    for record in dt:
        del record["bbox"]
    assert_matches_pycocotools(gt, dt, "segm")
    gt, dt = synthetic_coco(seed=4, images=8, iou_type="keypoints", dets_per_image=10)
    for record in dt:
        del record["bbox"]
    assert_matches_pycocotools(gt, dt, "keypoints")


def test_no_detections_equals_pycocotools_with_an_irrelevant_one():
    """pycocotools cannot load an empty results list; with one detection in a category without GT,
    it scores what no detections score: 0 where there is GT, -1 where there is none."""
    gt, _ = synthetic_coco(seed=5, images=5, categories=3)
    gt["categories"].append({"id": 999, "name": "no_gt"})
    ours = evaluate_coco(gt, [], "bbox")
    reference = pycocotools_evaluate(
        gt,
        [
            {
                "image_id": gt["images"][0]["id"],
                "category_id": 999,
                "bbox": [1, 1, 5, 5],
                "score": 0.5,
            }
        ],
        "bbox",
    )
    np.testing.assert_array_equal(ours.stats, reference.stats)
    np.testing.assert_array_equal(ours.precision, reference.precision)


def test_inputs_are_not_modified():
    gt, dt = case(11, "segm", adversarial=True)
    gt_before, dt_before = copy.deepcopy(gt), copy.deepcopy(dt)
    evaluate_coco(gt, dt, "segm")
    assert gt == gt_before and dt == dt_before


def test_per_category_ap_is_the_mean_of_pycocotools_precision():
    gt, dt = case(12, "bbox", adversarial=True)
    ours = evaluate_coco(gt, dt, "bbox")
    precision = pycocotools_evaluate(gt, dt, "bbox").precision[:, :, :, 0, -1]  # [T, R, K]
    for k, category_id in enumerate(sorted(c["id"] for c in gt["categories"])):
        valid = precision[:, :, k][precision[:, :, k] > -1]
        expected = np.mean(valid) if valid.size else np.nan
        np.testing.assert_allclose(ours.per_category_ap[category_id], expected, atol=TOLERANCE)


@pytest.mark.parametrize("iou_type", ["bbox", "keypoints"])
def test_summary_lines_are_pycocotools_text(capsys, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dt = case(13, iou_type, adversarial=False)
    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(gt)
    coco_gt.createIndex()
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dt)), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    capsys.readouterr()
    evaluator.summarize()
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == (10 if iou_type == "keypoints" else 12)
    assert evaluate_coco(gt, dt, iou_type).summary_lines() == printed


def tiny_gt(images: int) -> dict:
    return {
        "images": [{"id": i, "width": 320, "height": 320} for i in range(1, images + 1)],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {
                "id": 10 + i,
                "image_id": i,
                "category_id": 1,
                "bbox": [10, 10, 20, 20],
                "area": 300,
                "iscrowd": 0,
            }
            for i in range(1, images + 1)
        ],
    }
