"""Instance segmentation: mask targets through the transforms, RLE, box + mask mAP, a tiny fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.tasks.conftest import FAST_NET, fast_dev_trainer, tiny_shapes
from visionflow.batches import DetectionTarget, InstanceBatch
from visionflow.datamodules import ShapesInstancesDataModule, YoloDetectionDataModule
from visionflow.errors import DataError, SpecError
from visionflow.evaluation.coco_predictions import encode_masks
from visionflow.evaluation.detection import DetectionEvaluator, ground_truth_entry
from visionflow.registry import DATAMODULES, TASKS
from visionflow.tasks import InstanceSegmentationTask, ObjectDetectionTask
from visionflow.tasks.detection_io import compact, from_model_output, to_model_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> ShapesInstancesDataModule:
    return tiny_shapes(ShapesInstancesDataModule, tmp_path_factory.mktemp("shapes_instances"))


def mask_extent(mask: torch.Tensor) -> list[int]:
    """XYXY pixel-edge box of a mask [H, W]."""
    ys, xs = np.nonzero(mask.numpy())
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def test_registered_with_the_instance_batch_and_masks_are_always_read(shapes):
    assert TASKS.get("instance_segmentation").tags["batch"] is InstanceBatch
    assert DATAMODULES.get("shapes_instances").tags["batch"] is InstanceBatch
    assert DATAMODULES.get("coco_instances").tags["batch"] is InstanceBatch
    assert shapes.masks, "masks: false by default, yet an InstanceBatch promises them"
    shapes.setup("fit")
    batch = next(iter(shapes.train_dataloader()))
    assert isinstance(batch, InstanceBatch)
    assert all(t.masks.shape == (len(t.boxes), 64, 64) for t in batch.targets)


def test_train_transforms_keep_masks_aligned_with_their_boxes(shapes):
    """Letterbox, scale jitter, shifts and flips move masks and boxes together; shapes' boxes are
    their masks' tight extents, so they must stay so within a pixel of interpolation."""
    shapes.setup("fit")
    dataset = shapes.datasets["train"]
    checked = 0
    for epoch in range(3):  # other augmentations each epoch
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            _, target = dataset[index]
            for box, mask in zip(target.boxes.tolist(), target.masks):
                if mask.sum() < 20 or min(box) <= 0.5 or max(box) >= 63.5:  # cut at the border
                    continue
                assert mask_extent(mask) == pytest.approx(box, abs=1.5)
                checked += 1
    assert checked > 10


def test_rle_round_trip():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    masks = rng.random((3, 17, 23)) > 0.6  # [N, H, W]
    rles = encode_masks(masks)
    assert all(isinstance(r["counts"], str) and r["size"] == [17, 23] for r in rles)
    json.dumps(rles)  # JSON-ready
    decoded = [mask_utils.decode({**r, "counts": r["counts"].encode()}) for r in rles]
    assert np.array_equal(np.stack(decoded).astype(bool), masks)


def test_model_output_masks_are_thresholded_and_compacted_to_rle():
    probabilities = torch.zeros(2, 1, 8, 8)
    probabilities[0, 0, 2:5, 2:5] = 0.9
    probabilities[1, 0, :, :4] = 0.4  # below 0.5: empty
    output = {
        "boxes": torch.tensor([[2.0, 2, 5, 5], [0, 0, 4, 8]]),
        "scores": torch.tensor([0.9, 0.8]),
        "labels": torch.tensor([1, 2]),
        "masks": probabilities,
    }
    detections = from_model_output(output)
    assert detections["labels"].tolist() == [0, 1]
    assert detections["masks"].dtype == torch.bool and detections["masks"].shape == (2, 8, 8)
    assert detections["masks"][0].sum() == 9 and detections["masks"][1].sum() == 0
    kept = compact(detections)
    assert "masks" not in kept and len(kept["rles"]) == 2


def target_with_masks(masks: torch.Tensor, labels: list[int], image_id: int = 5):
    boxes = torch.tensor([mask_extent(m) for m in masks], dtype=torch.float32)
    return DetectionTarget(boxes, torch.tensor(labels), image_id, masks=masks.to(torch.uint8))


def two_squares() -> torch.Tensor:
    masks = torch.zeros(2, 40, 40, dtype=torch.uint8)
    masks[0, 4:20, 4:20] = 1
    masks[1, 22:38, 10:36] = 1
    return masks


def test_box_and_mask_map_of_perfect_and_of_wrong_masks():
    masks = two_squares()
    target = target_with_masks(masks, [0, 1])
    entry = ground_truth_entry(target, (40, 40), [1, 2], with_masks=True)
    assert all("segmentation" in a for a in entry["annotations"])
    evaluator = DetectionEvaluator([1, 2], ["a", "b"], iou_types=("bbox", "segm"))
    perfect = {
        "boxes": target.boxes,
        "scores": torch.tensor([0.9, 0.8]),
        "labels": target.labels,
        "masks": masks.bool(),
    }
    evaluator.process([perfect], [entry])
    metrics = evaluator.evaluate().metrics
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["mask_mAP"] == pytest.approx(1.0)

    hollow = masks.clone().bool()
    hollow[:, 6:, :] = False  # right boxes, masks cut to their top rows: boxes perfect, masks not
    evaluator.reset()
    evaluator.process([compact({**perfect, "masks": hollow})], [entry])
    evaluation = evaluator.evaluate()
    assert evaluation.metrics["mAP"] == pytest.approx(1.0)
    assert evaluation.metrics["mask_mAP"] < 0.2
    assert set(evaluation.details) == {"bbox", "segm"}


def test_a_target_without_masks_is_a_data_error():
    target = DetectionTarget(torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([0]), image_id=3)
    with pytest.raises(DataError, match="image 3: the target has no masks"):
        to_model_target(target, ("masks",))


@pytest.mark.parametrize(
    "task, net, message",
    [
        (ObjectDetectionTask, "maskrcnn_mobilenet_v3_large_fpn", "predicts masks"),
        (InstanceSegmentationTask, "fasterrcnn_mobilenet_v3_large_fpn", "boxes alone"),
    ],
)
def test_a_net_that_predicts_other_things_is_refused(task, net, message):
    with pytest.raises(SpecError, match=f"net: .*{message}") as error:
        task(num_classes=3, net=net)
    assert "maskrcnn" in error.value.hint or "fasterrcnn" in error.value.hint


def test_default_net_and_the_spec_sees_every_argument():
    from visionflow.arguments import parameters_of

    names = [p.name for p in parameters_of(InstanceSegmentationTask)]
    assert names == [p.name for p in parameters_of(ObjectDetectionTask)]
    net = next(p for p in parameters_of(InstanceSegmentationTask) if p.name == "net")
    assert net.default == "maskrcnn_mobilenet_v3_large_fpn"


def test_fit_validate_test_predict_with_mask_map(shapes, tmp_path):
    task = InstanceSegmentationTask(**shapes.info.task_kwargs(), net_args=FAST_NET)
    assert task.hparams.net == "maskrcnn_mobilenet_v3_large_fpn"
    trainer = fast_dev_trainer(tmp_path)
    trainer.fit(task, datamodule=shapes)
    logged = trainer.callback_metrics
    assert {"train/loss_mask", "val/mAP", "val/mask_mAP", "val/mask_AP50"} <= set(logged)
    (metrics,) = trainer.test(task, datamodule=shapes, verbose=False)
    assert {"test/mAP", "test/mask_mAP"} <= set(metrics)
    assert task.last_result["segm"].stats.shape == (12,)
    paths = task.save_artifacts("test", tmp_path / "plots")
    names = {p.relative_to(tmp_path / "plots").as_posix() for p in paths}
    assert {"detections_test_00.png", "evaluation_test/segm/pr_by_iou.png"} <= names

    trainer.predict(task, datamodule=shapes)
    results = json.loads(task.predictions_path.read_text())
    assert results and all(r["segmentation"]["size"] == [64, 64] for r in results)


def test_coco8_seg_polygons_score_as_their_own_perfect_masks(shared_data):
    """The real coco8-seg polygons (YOLO format) through the ground truth and the mask evaluator."""
    data = YoloDetectionDataModule(
        dataset_yaml=str(shared_data / "detection/coco8-seg/coco8-seg.yaml"),
        masks=True,
        batch_size=2,
    )
    data.setup("validate")
    ids = list(data.info.category_ids)
    evaluator = DetectionEvaluator(ids, list(data.info.class_names), ("bbox", "segm"))
    for index in range(len(data.datasets["val"])):
        image, target = data.datasets["val"][index]
        perfect = {
            "boxes": target.boxes,
            "scores": torch.linspace(1, 0.5, len(target.boxes)),
            "labels": target.labels,
            "masks": target.masks,
        }
        entry = ground_truth_entry(target, image.shape[-2:], ids, with_masks=True)
        evaluator.process([perfect], [entry])
    metrics = evaluator.evaluate().metrics
    assert metrics["mask_mAP"] == pytest.approx(1.0) and metrics["mAP"] == pytest.approx(1.0)
