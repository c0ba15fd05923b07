"""PanopticSegmentationTask: a tiny fit on generated shapes produces PQ through the evaluator."""

from __future__ import annotations

import math

import pytest
import torch

from tests.tasks.conftest import quiet_trainer
from visionflow.batches import PanopticBatch, PanopticTarget
from visionflow.errors import SpecError
from visionflow.tasks.panoptic import PanopticSegmentationTask


@pytest.mark.slow
def test_a_tiny_fit_reports_panoptic_quality(shapes_panoptic, tmp_path):
    torch.manual_seed(0)
    task = PanopticSegmentationTask(
        **shapes_panoptic.info.task_kwargs(), stuff_area=16, score_threshold=0.0
    )
    trainer = quiet_trainer(
        tmp_path,
        accelerator="cpu",
        enable_checkpointing=False,
        max_epochs=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, shapes_panoptic)
    metrics = trainer.callback_metrics
    assert math.isfinite(float(metrics["train/loss"]))
    for name in ("PQ", "SQ", "RQ", "PQ_things", "PQ_stuff"):
        assert 0.0 <= float(metrics[f"val/{name}"]) <= 100.0
    assert task.last_result.per_class.keys() == {1, 2, 3, 4, 5}
    table, summary = task.save_artifacts("validate", tmp_path)
    lines = table.read_text().splitlines()
    assert lines[0].startswith("category_id,name,isthing,pq") and len(lines) == 6
    assert lines[4].startswith("4,sky,0,") and "PQ" in summary.read_text()
    trainer.test(task, shapes_panoptic)
    assert (tmp_path / "panoptic_samples.png") in task.save_artifacts("test", tmp_path)


def test_needs_a_thing_and_a_stuff_class():
    with pytest.raises(SpecError, match="thing_classes: one flag per class"):
        PanopticSegmentationTask(num_classes=2, thing_classes=[True, True], image_size=[64, 64])


def test_training_targets_are_the_visible_things_picked_on_the_host():
    """Label 0 and 2 are things (R-CNN classes 1 and 2), label 1 stuff; segment 3 (a thing) was
    cropped away, so it trains nothing."""
    task = PanopticSegmentationTask(
        num_classes=3, thing_classes=[True, False, True], image_size=[8, 8]
    )
    segments = torch.zeros(8, 8, dtype=torch.int64)
    segments[:4] = 1
    segments[5:7, 2:5] = 2
    target = PanopticTarget(segments, torch.tensor([1, 2, 0]), image_id=1)
    batch = task.with_things(PanopticBatch(torch.zeros(1, 3, 8, 8), [target]))
    (things,) = batch.things
    assert things["ids"].tolist() == [2] and things["labels"].tolist() == [2]
    assert things["boxes"].tolist() == [[2.0, 5.0, 5.0, 7.0]]  # XYXY over the pixels' edges
    rcnn = task._rcnn_target(target, things)
    assert torch.equal(rcnn["masks"], (segments == 2)[None].to(torch.uint8))
    assert torch.equal(rcnn["boxes"], things["boxes"])


def test_the_per_class_table_leaves_the_scores_of_an_unseen_category_empty(tmp_path):
    """Label 2 is in no image, true or predicted: the engine gives it pq/sq/rq -1 (undefined), which
    the table showed as -100.00; its cells are empty (panopticapi leaves the class out of every
    average), its counts 0."""
    task = PanopticSegmentationTask(
        num_classes=3, thing_classes=[True, False, True], image_size=[4, 4]
    )
    ids = torch.tensor([[1, 1, 2, 2]] * 4)
    image = (ids, [(1, 1), (2, 2)])  # segment 1: category 1 (a thing), 2: category 2 (stuff)
    evaluator = task.make_evaluator()
    evaluator.process([image], [image])
    table, _ = task.save_evaluation(evaluator.evaluate(), tmp_path)
    rows = table.read_text().splitlines()
    assert rows[1:] == [
        "1,0,1,100.00,100.00,100.00,1,0,0",
        "2,1,0,100.00,100.00,100.00,1,0,0",
        "3,2,1,,,,0,0,0",
    ]
