"""Pose: shapes' named keypoints through the transforms, OKS evaluation, a tiny fit."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from tests.tasks.conftest import FAST_NET, fast_dev_trainer, tiny_shapes
from visionflow.batches import DetectionTarget, KeypointBatch
from visionflow.datamodules import ShapesKeypointsDataModule
from visionflow.datamodules.shapes import KEYPOINT_NAMES, extreme_points, make_shapes_dataset
from visionflow.errors import SpecError
from visionflow.evaluation.detection import DetectionEvaluator, ground_truth_entry
from visionflow.registry import TASKS
from visionflow.tasks import KeypointDetectionTask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIGMAS = [0.05] * 4
TOP, RIGHT, BOTTOM, LEFT = range(4)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> ShapesKeypointsDataModule:
    return tiny_shapes(ShapesKeypointsDataModule, tmp_path_factory.mktemp("shapes_keypoints"))


def test_the_generator_writes_each_shapes_extreme_points(tmp_path):
    from pycocotools import mask as mask_utils

    dataset = json.loads(make_shapes_dataset(tmp_path, images=3, image_size=64).read_text())
    assert dataset["categories"][0]["keypoints"] == list(KEYPOINT_NAMES)
    for annotation in dataset["annotations"]:
        segmentation = annotation["segmentation"]
        rle = (
            mask_utils.merge(mask_utils.frPyObjects(segmentation, 64, 64))
            if isinstance(segmentation, list)
            else {**segmentation, "counts": segmentation["counts"].encode()}
        )
        mask = mask_utils.decode(rle).astype(bool)
        points = np.array(annotation["keypoints"]).reshape(4, 3)
        x, y, w, h = annotation["bbox"]
        assert points[TOP, 1] == y + 0.5 and points[BOTTOM, 1] == y + h - 0.5
        assert points[LEFT, 0] == x + 0.5 and points[RIGHT, 0] == x + w - 0.5
        assert annotation["keypoints"] == extreme_points(mask)


def test_registered_with_the_keypoint_batch_and_the_info_names_the_points(shapes):
    assert TASKS.get("keypoint_detection").tags["batch"] is KeypointBatch
    assert shapes.info.keypoint_names == KEYPOINT_NAMES
    shapes.setup("fit")
    batch = next(iter(shapes.train_dataloader()))
    assert isinstance(batch, KeypointBatch)
    assert all(t.keypoints.shape == (len(t.boxes), 4, 3) for t in batch.targets)


def test_flips_swap_left_and_right_so_left_stays_left(shapes):
    """Every augmentation (flips included) keeps the left extreme left of the right one and
    every point on its box's edge: without the swap by name a flip puts left on the right."""
    shapes.setup("fit")
    dataset = shapes.datasets["train"]
    checked = 0
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            _, target = dataset[index]
            for box, points in zip(target.boxes.tolist(), target.keypoints):
                if (points[:, 2] == 0).any() or min(box) <= 0.5 or max(box) >= 63.5:
                    continue
                assert points[LEFT, 0] < points[RIGHT, 0] and points[TOP, 1] < points[BOTTOM, 1]
                assert points[LEFT, 0] == pytest.approx(box[0] + 0.5, abs=1.5)
                assert points[RIGHT, 0] == pytest.approx(box[2] - 0.5, abs=1.5)
                checked += 1
    assert checked > 10


def square_target(image_id: int = 4) -> DetectionTarget:
    points = torch.tensor([[[20.0, 10, 2], [30, 20, 2], [20, 30, 2], [10, 20, 2]]])
    return DetectionTarget(
        torch.tensor([[10.0, 10, 30, 30]]),
        torch.tensor([0]),
        image_id,
        keypoints=points,
        area=torch.tensor([400.0]),
    )


def test_oks_map_of_perfect_and_of_displaced_keypoints():
    target = square_target()
    entry = ground_truth_entry(target, (40, 40), [1], with_keypoints=True)
    assert entry["annotations"][0]["num_keypoints"] == 4
    evaluator = DetectionEvaluator([1], ["square"], ("bbox", "keypoints"), SIGMAS)
    detection = {
        "boxes": target.boxes,
        "scores": torch.tensor([0.9]),
        "labels": target.labels,
        "keypoints": target.keypoints,
    }
    evaluator.process([detection], [entry])
    assert evaluator.evaluate().metrics["kp_mAP"] == pytest.approx(1.0)

    displaced = target.keypoints.clone()
    displaced[..., :2] += 1.0  # 1.4 px off on a 20 px square: OKS exp(-1/4) = 0.78
    evaluator.reset()
    evaluator.process([{**detection, "keypoints": displaced}], [entry])
    metrics = evaluator.evaluate().metrics
    assert metrics["mAP"] == pytest.approx(1.0) and 0.4 < metrics["kp_mAP"] < 0.9


def test_an_image_without_detections_has_no_keypoint_results():
    from visionflow.evaluation.coco_predictions import results_from_prediction

    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
        "keypoints": torch.zeros(0, 4, 3),
    }
    assert results_from_prediction(empty, 1, None, "keypoints", "image 1", num_keypoints=4) == []


@pytest.mark.parametrize(
    "args, key",
    [
        ({}, "keypoint_sigmas: needed for 4 keypoints"),
        (
            {"keypoint_sigmas": [0.05] * 3},
            "keypoint_sigmas: 3 values for 4 keypoint_names; need one",
        ),
        (
            {"keypoint_sigmas": [0.05, 0, 0.05, 0.05]},
            r"keypoint_sigmas: value #2 \(0\) is not a fin",
        ),
        ({"keypoint_sigmas": []}, "keypoint_sigmas: empty; need finite positive numbers"),
        ({"keypoint_sigmas": 0.05}, "keypoint_sigmas: need a list of finite positive numbers"),
        ({"keypoint_names": []}, "keypoint_names: a pose task needs at least one"),
        ({"keypoint_sigmas": SIGMAS, "skeleton": [[1, 5]]}, "skeleton: pairs"),
        ({"keypoint_sigmas": SIGMAS, "net": "maskrcnn_mobilenet_v3_large_fpn"}, "net: "),
    ],
)
def test_bad_arguments_name_their_key(args, key):
    """Each failure names its argument and what is wrong with it (a count is not a bad value)."""
    with pytest.raises(SpecError) as error:
        KeypointDetectionTask(num_classes=3, **{"keypoint_names": list(KEYPOINT_NAMES), **args})
    assert re.match(key, error.value.message) and "\n" not in error.value.message


def test_fit_test_predict_with_oks_map(shapes, tmp_path):
    task = KeypointDetectionTask(
        **shapes.info.task_kwargs(),
        keypoint_sigmas=SIGMAS,
        skeleton=[[1, 2], [2, 3], [3, 4], [4, 1]],
        net_args=FAST_NET,
    )
    assert task.model.roi_heads.keypoint_predictor.kps_score_lowres.out_channels == 4
    trainer = fast_dev_trainer(tmp_path)
    trainer.fit(task, datamodule=shapes)
    assert {"train/loss_keypoint", "val/mAP", "val/kp_mAP", "val/kp_AP50"} <= set(
        trainer.callback_metrics
    )
    (metrics,) = trainer.test(task, datamodule=shapes, verbose=False)
    assert {"test/mAP", "test/kp_mAP"} <= set(metrics)
    paths = task.save_artifacts("test", tmp_path / "plots")
    names = {p.relative_to(tmp_path / "plots").as_posix() for p in paths}
    assert {"detections_test_00.png", "evaluation_test/keypoints/pr_by_iou.png"} <= names

    trainer.predict(task, datamodule=shapes)
    results = json.loads(task.predictions_path.read_text())
    assert results and all(len(r["keypoints"]) == 12 for r in results)
