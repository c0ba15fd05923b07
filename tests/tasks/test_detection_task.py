"""ObjectDetectionTask on tiny shapes data: fit/test/predict, COCO scoring, artifacts, pipeline."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from tests.tasks.conftest import FAST_NET, tiny_shapes
from visionflow.batches import DetectionBatch, DetectionTarget
from visionflow.datamodules.shapes import ShapesDetectionDataModule
from visionflow.errors import RunError, SpecError
from visionflow.evaluation.coco import CocoEvaluator
from visionflow.evaluation.detection import DetectionEvaluator, coco_dataset, ground_truth_entry
from visionflow.registry import TASKS
from visionflow.tasks.detection import (
    ObjectDetectionTask,
    from_model_output,
    to_model_target,
    without_crowds,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> ShapesDetectionDataModule:
    return tiny_shapes(ShapesDetectionDataModule, tmp_path_factory.mktemp("shapes_task"))


def make_task(shapes: ShapesDetectionDataModule, **kwargs) -> ObjectDetectionTask:
    return ObjectDetectionTask(
        **shapes.info.task_kwargs(),
        net="fasterrcnn_mobilenet_v3_large_fpn",
        net_args=FAST_NET,
        **kwargs,
    )


def one_step_trainer(folder, **options) -> pl.Trainer:
    """A Trainer of one training step, without logger, progress bar, summary or checkpoints."""
    off = ("logger", "enable_progress_bar", "enable_model_summary", "enable_checkpointing")
    return pl.Trainer(max_steps=1, default_root_dir=folder, **dict.fromkeys(off, False), **options)


def test_registered_with_the_detection_batch():
    entry = TASKS.get("object_detection")
    assert entry.tags["batch"] is DetectionBatch
    assert entry.builder.checkpoint_monitor == ("val/mAP", "max")


def test_fit_test_predict_and_artifacts(shapes, tmp_path):
    task = make_task(shapes, overlay_images=2)
    assert task.model.transform.min_size == (64,)  # the data's size, not torchvision's 800
    trainer = pl.Trainer(
        fast_dev_run=True,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=shapes)
    logged = trainer.callback_metrics
    assert {
        "train/loss",
        "train/loss_classifier",
        "train/loss_box_reg",
        "train/loss_objectness",
        "val/mAP",
        "val/AP50",
        "val/AP75",
        "val/APs",
    } <= set(logged)
    assert "val/APl" not in logged, (
        "64 px images hold no large object: APl is undefined (-1), not logged"
    )
    assert torch.isfinite(logged["train/loss"])

    (metrics,) = trainer.test(task, datamodule=shapes, verbose=False)
    assert {"test/mAP", "test/AP50", "test/AR100"} <= set(metrics)
    assert task.last_result.stats.shape == (12,)
    paths = task.save_artifacts("test", tmp_path / "plots")
    assert [p.name for p in paths] == [
        "detections_test_00.png",
        "detections_test_01.png",
        "pr_by_iou.png",
        "pr_by_area.png",
        "confusion_matrix.png",
        "tide_errors.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert [
        p.name
        for p in task.save_artifacts("test", tmp_path / "plots")
        if p.name.startswith("detections")
    ] == []  # samples are written once

    task.hparams.overlay_score = 0.0
    trainer.predict(task, datamodule=shapes)
    results = json.loads(task.predictions_path.read_text())
    assert task.predictions_path == tmp_path / "predictions.json"
    assert results, "an untrained detector at score threshold 0.05 still outputs boxes"
    assert {r["category_id"] for r in results} <= {1, 2, 3}  # dataset ids, not labels
    assert {r["image_id"] for r in results} <= {1, 2}
    assert all(len(r["bbox"]) == 4 and r["bbox"][2] >= 0 for r in results)


def target(boxes, labels, crowd, image_id=7) -> DetectionTarget:
    boxes = torch.tensor(boxes, dtype=torch.float32)
    return DetectionTarget(
        boxes=boxes,
        labels=torch.tensor(labels),
        image_id=image_id,
        iscrowd=torch.tensor(crowd),
        area=(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
    )


def test_crowd_is_not_trained_and_labels_shift_past_the_background():
    model_target = to_model_target(target([[0, 0, 4, 4], [1, 1, 9, 9]], [0, 2], [False, True]))
    assert model_target["labels"].tolist() == [1]
    assert model_target["boxes"].tolist() == [[0, 0, 4, 4]]
    output = from_model_output(
        {
            "boxes": torch.ones(3, 4),
            "scores": torch.tensor([0.9, 0.8, 0.7]),
            "labels": torch.tensor([3, 0, 1]),
        }
    )
    assert output["labels"].tolist() == [2, 0]
    assert output["scores"].tolist() == pytest.approx([0.9, 0.7])


def test_without_crowds_drops_every_field_of_a_crowd_annotation():
    crowded = target([[0, 0, 4, 4], [1, 1, 9, 9], [2, 2, 3, 3]], [0, 2, 1], [False, True, False])
    crowded.masks = torch.arange(3, dtype=torch.uint8).view(3, 1, 1).expand(3, 5, 5).clone()
    crowded.keypoints = torch.arange(3.0).view(3, 1, 1).expand(3, 2, 3).clone()
    kept = without_crowds(crowded)
    assert kept.iscrowd is None and kept.image_id == 7
    assert kept.labels.tolist() == [0, 1]
    assert kept.boxes.tolist() == [[0, 0, 4, 4], [2, 2, 3, 3]]
    assert kept.area.tolist() == [16, 1]
    assert kept.masks[:, 0, 0].tolist() == [0, 2] and kept.keypoints[:, 0, 0].tolist() == [0, 2]
    assert crowded.iscrowd.tolist() == [False, True, False]  # the input is left alone
    assert without_crowds(kept) is kept


def test_training_batches_lose_their_crowds_before_the_transfer(shapes, tmp_path, monkeypatch):
    """Crowds leave training batches in ``on_before_batch_transfer`` (on the host, where the mask
    selection costs no GPU wait); validation batches keep them for COCO scoring."""
    task = make_task(shapes)
    crowded = DetectionBatch(
        [torch.rand(3, 64, 64)],
        [target([[4, 4, 30, 30], [10, 10, 50, 50]], [0, 1], [False, True], 1)],
    )
    seen = {"fit": [], "validate": []}
    real_forward, real_evaluation_step = task.model.forward, task.evaluation_step

    def forward(images, targets=None):
        if targets is not None:
            seen["fit"].append(targets)
        return real_forward(images, targets)

    def evaluation_step(batch):
        seen["validate"].append(batch.targets)
        return real_evaluation_step(batch)

    monkeypatch.setattr(task.model, "forward", forward)
    monkeypatch.setattr(task, "evaluation_step", evaluation_step)
    loader = torch.utils.data.DataLoader([crowded], batch_size=None)
    trainer = one_step_trainer(tmp_path, num_sanity_val_steps=0)
    trainer.fit(task, loader, loader)
    (fit_targets,) = seen["fit"]
    assert fit_targets[0]["labels"].tolist() == [1]  # label 0 + the background
    (val_targets,) = seen["validate"]
    assert val_targets[0].iscrowd.tolist() == [False, True]


def test_ground_truth_conversion_scores_perfect_predictions_as_one():
    """XYXY targets -> COCO XYWH with dataset ids; matching predictions score mAP 1, a detection
    on the crowd region is not a false positive, and a DDP-duplicated image counts once."""
    category_ids, names = [10, 20, 30], ["a", "b", "c"]
    first = target([[10, 20, 40, 60], [50, 5, 90, 45]], [2, 0], [False, False], image_id=7)
    second = target([[0, 0, 30, 30], [40, 40, 80, 80]], [1, 1], [False, True], image_id=8)
    entries = [ground_truth_entry(t, (100, 100), category_ids) for t in (first, second, first)]
    dataset = coco_dataset(entries, category_ids, names)
    assert len(dataset["images"]) == 2 and len(dataset["annotations"]) == 4
    assert dataset["annotations"][0]["bbox"] == [10, 20, 30, 40]
    assert dataset["annotations"][0]["category_id"] == 30
    evaluator = CocoEvaluator(dataset, iou_type="bbox", label_to_category=category_ids)
    for t in (first, second):
        evaluator.process(
            [
                {
                    "image_id": t.image_id,
                    "boxes": t.boxes,
                    "labels": t.labels,
                    "scores": torch.full((len(t.labels),), 0.9),
                }
            ]
        )
    stats = evaluator.evaluate().stats
    assert stats[0] == pytest.approx(1.0) and stats[1] == pytest.approx(1.0)


def test_evaluator_counts_a_repeated_image_once_with_its_first_detections():
    """DDP pads the last batches with repeated images; the score must be the dataset's."""
    category_ids, names = [1, 2], ["a", "b"]
    first = target([[10, 10, 50, 50]], [0], [False], image_id=1)
    second = target([[20, 20, 60, 60]], [1], [False], image_id=2)
    entries = [ground_truth_entry(t, (100, 100), category_ids) for t in (first, second)]

    def detections(t, score=0.9):
        return {"boxes": t.boxes, "labels": t.labels, "scores": torch.full((len(t.labels),), score)}

    miss = {
        "boxes": torch.tensor([[70.0, 70, 90, 90]]),
        "labels": torch.tensor([1]),
        "scores": torch.tensor([0.99]),
    }
    evaluator = DetectionEvaluator(category_ids, names)
    evaluator.process([detections(first), detections(second)], entries)
    evaluator.process([miss], entries[1:])  # the padding repeats image 2
    evaluation = evaluator.evaluate()
    assert evaluation.num_samples == 2
    assert evaluation.metrics["mAP"] == pytest.approx(1.0)  # the repeat's miss is not counted
    assert evaluation.details.stats.shape == (12,)
    evaluator.reset()
    evaluator.process([detections(first)], entries[:1])
    assert evaluator.evaluate().num_samples == 1


def test_a_non_finite_loss_stops_the_fit_naming_its_step(shapes, tmp_path, monkeypatch):
    """The check reads the loss one step late (no wait on the step just queued), and the last
    step's loss is checked at the end of the epoch."""
    task = make_task(shapes)
    real_model_forward = task.model.forward

    def nan_losses(images, targets=None):
        losses = real_model_forward(images, targets)
        return {**losses, "loss_classifier": losses["loss_classifier"] * float("nan")}

    monkeypatch.setattr(task.model, "forward", nan_losses)
    trainer = one_step_trainer(tmp_path, limit_val_batches=0)
    with pytest.raises(RunError, match=r"detection loss is nan at step 0 .*loss_classifier"):
        trainer.fit(task, datamodule=shapes)


@pytest.mark.parametrize(
    "args, key",
    [
        ({"in_channels": 1}, "in_channels"),
        ({"category_ids": [1, 2]}, "category_ids"),
        ({"net_args": {"min_sise": 64}}, r"net_args\.min_sise"),
        ({"net_args": {"num_classes": 4}}, r"net_args\.num_classes"),
        ({"net": "fasterrcnn_resnet51_fpn"}, "net"),
        ({"optimizer": {"lr": -1.0}}, r"optimizer\.lr"),
    ],
)
def test_bad_arguments_name_their_key(args, key):
    kwargs = {"num_classes": 3, **args}
    with pytest.raises(SpecError, match=rf"^{key}:"):
        ObjectDetectionTask(**kwargs)


def test_freeze_backbone_trains_only_the_heads():
    task = ObjectDetectionTask(
        num_classes=2, net="ssdlite320_mobilenet_v3_large", freeze_backbone=True
    )
    task.train()
    assert not any(p.requires_grad for p in task.model.backbone.parameters())
    assert all(p.requires_grad for p in task.model.head.parameters())
    assert not task.model.backbone.training and task.model.head.training


def test_overlay_captions_sit_outside_their_boxes_truth_below_prediction_above():
    import io

    from PIL import Image

    from visionflow.tasks.detection_plots import overlay_png

    box = torch.tensor([[40.0, 60.0, 80.0, 100.0]])  # zoomed 4x in the 512 px overlay
    sample = {
        "image": torch.full((3, 128, 128), 0.5),
        "truth": box,
        "truth_labels": torch.tensor([0]),
        "boxes": box.clone(),
        "labels": torch.tensor([0]),
        "scores": torch.tensor([0.9]),
    }
    pixels = np.asarray(Image.open(io.BytesIO(overlay_png(sample, ["square"]))).convert("RGB"))
    lime = (pixels == (0, 255, 0)).all(axis=-1)
    magenta = (pixels == (255, 0, 255)).all(axis=-1)
    inside = np.s_[60 * 4 + 3 : 100 * 4 - 3, 40 * 4 + 3 : 80 * 4 - 3]
    assert not lime[inside].any() and not magenta[inside].any()  # no caption inside the box
    assert lime[100 * 4 + 2 :, 40 * 4 : 80 * 4].any()  # "GT square" under the box
    assert magenta[: 60 * 4 - 2, 40 * 4 : 80 * 4].any()  # "square 0.90" over it
