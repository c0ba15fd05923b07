"""Semantic segmentation: nets, losses, the confusion tally and scores (hand-computed and
torchmetrics), sliding-window inference, the evaluation contract, weights and plots."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from visionflow.batches import IGNORE_INDEX, SegmentationBatch
from visionflow.errors import SpecError, UnknownNameError
from visionflow.evaluation.semantic import SegmentationEvaluator, semantic_scores
from visionflow.tasks.nets.segmentation import build_segmentation_net
from visionflow.tasks.segmentation import (
    SemanticSegmentationTask,
    _starts,
    confusion_update,
    dice_loss,
)

TINY_UNET = {"depth": 2, "width": 4}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("upsampling", ["transposed", "bilinear"])
@pytest.mark.parametrize("size", [(32, 32), (37, 50)])
def test_unet_keeps_the_input_size(upsampling, size):
    net = build_segmentation_net(
        "unet", num_classes=5, in_channels=1, net_args={**TINY_UNET, "upsampling": upsampling}
    )
    assert net(torch.zeros(2, 1, *size)).shape == (2, 5, *size)


def test_transposed_convolution_doubles_height_and_width():
    net = build_segmentation_net("unet", num_classes=3, in_channels=3, net_args=TINY_UNET)
    step = net.up[0]  # deepest level: 16 -> 8 channels
    assert isinstance(step.up, nn.ConvTranspose2d)
    assert step.up(torch.zeros(1, 16, 5, 7)).shape == (1, 8, 10, 14)


@pytest.mark.slow
def test_torchvision_nets_build_offline_with_aux_heads():
    net = build_segmentation_net(
        "deeplabv3_mobilenet_v3_large", num_classes=3, in_channels=3, net_args={"aux_loss": True}
    ).eval()
    outputs = net(torch.zeros(1, 3, 64, 64))
    assert outputs["out"].shape == outputs["aux"].shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    "name, args, error, match",
    [
        (
            "unett",
            {},
            UnknownNameError,
            r"^net: unknown segmentation net 'unett'; did you mean 'unet'",
        ),
        ("unet", {"depht": 2}, SpecError, r"net_args.depht: unknown key; did you mean 'depth'"),
        ("unet", {"depth": 0}, SpecError, r"net_args.depth: must be >= 1"),
        ("lraspp_mobilenet_v3_large", {"aux_loss": True}, SpecError, "has no auxiliary head"),
    ],
)
def test_bad_nets_are_one_line_errors(name, args, error, match):
    with pytest.raises(error, match=match):
        build_segmentation_net(name, num_classes=3, in_channels=3, net_args=args)


def test_dice_loss_is_zero_for_a_perfect_prediction_and_skips_ignored_pixels():
    masks = torch.tensor([[[0, 1], [1, IGNORE_INDEX]]])
    perfect = torch.tensor(
        [
            [
                [[9.0, -9], [-9, -9]],
                [[-9, 9], [9, 9]],  # ignore says 1
                [[-9, -9], [-9, -9]],
            ]
        ]
    )  # class 2 absent
    assert dice_loss(perfect, masks, IGNORE_INDEX) < 1e-3
    wrong = perfect[:, [1, 0, 2]]  # classes 0 and 1 swapped: Dice (0 + 1) / 4
    assert dice_loss(wrong, masks, IGNORE_INDEX) == pytest.approx(
        1 - (0.25 + 0.25 + 1) / 3, abs=1e-3
    )


def test_confusion_update_counts_pairs_and_skips_ignore():
    confusion = torch.zeros(3, 3, dtype=torch.int64)
    masks = torch.tensor([[[0, 0, 1], [2, IGNORE_INDEX, 2]]])
    predicted = torch.tensor([[[0, 1, 1], [0, 2, 2]]])
    confusion_update(confusion, predicted, masks, IGNORE_INDEX)
    assert confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_scores_match_a_hand_computed_confusion_matrix():
    confusion = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 0]])  # class 2 never predicted right
    scores = semantic_scores(confusion)
    iou = [3 / 5, 2 / 3, 0.0]
    assert scores["mIoU"] == pytest.approx(sum(iou) / 3)
    assert scores["fwIoU"] == pytest.approx((4 * iou[0] + 2 * iou[1] + 1 * iou[2]) / 7)
    assert scores["pixel_acc"] == pytest.approx(5 / 7)
    assert scores["mean_acc"] == pytest.approx((3 / 4 + 1 + 0) / 3)
    assert math.isnan(semantic_scores(np.array([[2, 0], [0, 0]]))["IoU/1"])


def test_scores_equal_torchmetrics():
    from torchmetrics.functional.classification import multiclass_jaccard_index

    generator = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 5, (4, 16, 16), generator=generator)
    masks[:, 0] = IGNORE_INDEX
    predicted = torch.randint(0, 5, (4, 16, 16), generator=generator)
    confusion = torch.zeros(5, 5, dtype=torch.int64)
    confusion_update(confusion, predicted, masks, IGNORE_INDEX)
    expected = multiclass_jaccard_index(predicted, masks, 5, ignore_index=IGNORE_INDEX)
    assert semantic_scores(confusion)["mIoU"] == pytest.approx(float(expected), abs=1e-6)


def test_sliding_window_equals_the_whole_image_for_a_pointwise_net():
    task = SemanticSegmentationTask(
        num_classes=3, net_args=TINY_UNET, inference="slide", window=[16, 16], stride=[10, 10]
    )
    task.net = nn.Conv2d(3, 3, kernel_size=1)
    images = torch.randn(2, 3, 40, 35)
    torch.testing.assert_close(task(images), task.net(images))
    assert _starts(40, 16, 10) == [0, 10, 20, 24] and _starts(16, 16, 10) == [0]


@pytest.mark.parametrize(
    "args, match",
    [
        ({"class_weights": [1.0]}, "class_weights: 1 weights for num_classes=3"),
        ({"inference": "slide"}, "window: inference: slide needs window"),
        ({"class_names": ["a", "b"]}, "class_names: 2 names for num_classes=3"),
    ],
)
def test_bad_task_arguments_name_the_key(args, match):
    with pytest.raises(SpecError, match=match):
        SemanticSegmentationTask(num_classes=3, net_args=TINY_UNET, **args)


def test_weights_load_with_a_new_head_for_other_classes(tmp_path):
    source = build_segmentation_net("unet", num_classes=3, in_channels=3, net_args=TINY_UNET)
    torch.save(source.state_dict(), tmp_path / "unet.pt")
    task = SemanticSegmentationTask(
        num_classes=5, net_args=TINY_UNET, weights=str(tmp_path / "unet.pt")
    )
    torch.testing.assert_close(task.net.stem[0].weight, source.stem[0].weight)
    assert task.net.head.weight.shape[0] == 5


def test_loss_uses_class_weights_and_aux_head():
    masks = torch.tensor([[[0, 1], [1, IGNORE_INDEX]]])
    logits = torch.randn(1, 2, 2, 2)
    plain = SemanticSegmentationTask(num_classes=2, net_args=TINY_UNET, aux_weight=0.5)
    weighted = SemanticSegmentationTask(num_classes=2, net_args=TINY_UNET, class_weights=[1.0, 0.0])
    assert plain.loss({"out": logits, "aux": logits}, masks) == pytest.approx(
        1.5 * float(plain.loss(logits, masks))
    )
    only_class_0 = nn.functional.cross_entropy(logits[..., :1, :1], masks[..., :1, :1])
    assert weighted.loss(logits, masks) == pytest.approx(float(only_class_0))


def test_epoch_metrics_equal_the_evaluator_and_plots_are_written(tmp_path):
    from lightning.pytorch import Trainer

    generator = torch.Generator().manual_seed(1)
    batches = [
        SegmentationBatch(
            torch.randn(2, 3, 24, 24, generator=generator),
            torch.randint(0, 3, (2, 24, 24), generator=generator),
        )
        for _ in range(3)
    ]
    task = SemanticSegmentationTask(
        num_classes=3, net_args=TINY_UNET, class_names=["a", "b", "c"]
    ).eval()
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    logged = trainer.validate(task, loader, verbose=False)[0]
    evaluator = task.make_evaluator()
    with torch.no_grad():
        for batch in batches:
            evaluator.process(*task.evaluation_step(batch))
    evaluated = evaluator.evaluate()
    assert logged["val/mIoU"] == pytest.approx(evaluated.metrics["mIoU"])
    assert logged["val/pixel_acc"] == pytest.approx(evaluated.metrics["pixel_acc"])
    paths = task.save_artifacts("validate", tmp_path)
    assert sorted(p.name for p in paths) == [
        "val_class_iou.csv",
        "val_class_iou.png",
        "val_samples.png",
    ]
    assert (tmp_path / "val_class_iou.csv").read_text().splitlines()[0] == "class,IoU"


def test_evaluator_and_task_scores_share_one_definition():
    evaluator = SegmentationEvaluator(3)
    masks = torch.tensor([[[0, 1, 2, IGNORE_INDEX]]])
    evaluator.process(torch.tensor([[[0, 1, 1, 0]]]), masks)
    confusion = torch.zeros(3, 3, dtype=torch.int64)
    confusion_update(confusion, torch.tensor([[[0, 1, 1, 0]]]), masks, IGNORE_INDEX)
    metrics = evaluator.evaluate().metrics
    assert {k: metrics[k] for k in ("mIoU", "pixel_acc")} == {
        k: semantic_scores(confusion)[k] for k in ("mIoU", "pixel_acc")
    }
