"""SegmentationEvaluator: mIoU and accuracies as torchmetrics computes them, independent of batching."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from visionflow.batches import IGNORE_INDEX
from visionflow.errors import DataError
from visionflow.evaluation.semantic import SegmentationEvaluator


def label_maps(seed: int, classes: int = 5, shape=(6, 17, 23)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, classes, shape, generator=generator)
    masks[torch.rand(shape, generator=generator) < 0.1] = IGNORE_INDEX
    noise = torch.randint(0, classes, shape, generator=generator)
    predicted = torch.where(torch.rand(shape, generator=generator) < 0.6, masks, noise)
    predicted[predicted == IGNORE_INDEX] = 0
    return predicted, masks


@pytest.mark.parametrize("seed", range(5))
def test_equals_torchmetrics(seed):
    predicted, masks = label_maps(seed)
    evaluator = SegmentationEvaluator(num_classes=5)
    evaluator.process(predicted, masks)
    metrics = evaluator.evaluate().metrics
    kwargs = {"num_classes": 5, "ignore_index": IGNORE_INDEX}
    assert metrics["mIoU"] == pytest.approx(
        float(MulticlassJaccardIndex(**kwargs)(predicted, masks)), abs=1e-6
    )
    assert metrics["pixel_acc"] == pytest.approx(
        float(MulticlassAccuracy(average="micro", **kwargs)(predicted, masks)), abs=1e-6
    )
    assert metrics["mean_acc"] == pytest.approx(
        float(MulticlassAccuracy(average="macro", **kwargs)(predicted, masks)), abs=1e-6
    )


def test_batches_in_any_grouping_give_the_same_bits():
    predicted, masks = label_maps(7)
    whole = SegmentationEvaluator(5)
    whole.process(predicted, masks)
    split = SegmentationEvaluator(5)
    for part in (slice(0, 1), slice(1, 4), slice(4, 6)):
        split.process(predicted[part], masks[part])
    assert split.evaluate().metrics == whole.evaluate().metrics
    assert split.evaluate().num_samples == 6


def test_a_class_absent_everywhere_is_left_out_of_the_mean():
    evaluator = SegmentationEvaluator(num_classes=4)
    evaluator.process(torch.tensor([[[0, 0, 1, 1]]]), torch.tensor([[[0, 1, 1, 1]]]))
    metrics = evaluator.evaluate().metrics
    assert metrics["IoU/0"] == pytest.approx(0.5) and metrics["IoU/1"] == pytest.approx(2 / 3)
    assert metrics["IoU/2"] != metrics["IoU/2"]  # NaN: no pixel either way
    assert metrics["mIoU"] == pytest.approx((0.5 + 2 / 3) / 2)


@pytest.mark.parametrize(
    "predicted, masks, message",
    [
        (torch.zeros(1, 4, 4), torch.zeros(1, 4, 5), "differ"),
        (torch.full((1, 2, 2), 9), torch.zeros(1, 2, 2), "a prediction label is outside 0..3"),
        (torch.zeros(1, 2, 2), torch.full((1, 2, 2), -1), "a mask label is outside 0..3"),
    ],
)
def test_bad_input_names_what_is_wrong(predicted, masks, message):
    with pytest.raises(DataError, match=message):
        SegmentationEvaluator(4).process(predicted, masks)


@pytest.mark.parametrize("ignore_index", [-1, -100])
def test_a_negative_ignore_index_scores_like_255(ignore_index):
    # -100 is PyTorch's cross-entropy default and the tasks accept it; the counting engine takes
    # unsigned labels only, so the evaluator must not hand it a negative ignore_index
    predicted, masks = label_maps(3)
    usual = SegmentationEvaluator(5)
    usual.process(predicted, masks)
    negative = SegmentationEvaluator(5, ignore_index=ignore_index)
    negative.process(predicted, masks.masked_fill(masks == IGNORE_INDEX, ignore_index))
    assert torch.equal(
        torch.as_tensor(negative.evaluate().details), torch.as_tensor(usual.evaluate().details)
    )
