"""Semantic segmentation: label every pixel with one of ``num_classes`` classes.

    task = SemanticSegmentationTask(num_classes=4, net="unet", net_args={"depth": 3, "width": 16})
    trainer.fit(task, datamodule)    # SegmentationBatch(images [B, C, H, W], masks [B, H, W])

Loss: cross-entropy over the pixels whose mask is not ``ignore_index`` (optionally with
``class_weights``), plus ``dice_weight`` times the soft Dice loss, plus ``aux_weight`` times the
cross-entropy of the net's auxiliary head when it has one (torchvision FCN/DeepLabV3 with
``net_args.aux_loss: true``). Inference: ``whole`` image, or ``slide``: ``window`` ``[h, w]``
crops every ``stride`` pixels, logits averaged where they overlap, for images larger than the
training crop.

Logged once per epoch: ``train/loss``; ``val|test/loss``, ``mIoU``, ``fwIoU``, ``pixel_acc``,
``mean_acc``, all from one integer confusion matrix summed over processes (DDP-exact; the same
numbers as the evaluator of :meth:`make_evaluator` and ``visionflow eval``). After ``fit``,
``validate`` and ``test``, :meth:`save_artifacts` writes per-class IoU bars (PNG + CSV) and
sample overlays (image | ground truth | prediction). Training steps never read from the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from visionflow.batches import IGNORE_INDEX, SegmentationBatch
from visionflow.errors import SpecError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.semantic import SegmentationEvaluator, semantic_scores
from visionflow.registry import TASKS
from visionflow.tasks.base import LabelledDataTask
from visionflow.tasks.nets.segmentation import build_segmentation_net, load_segmentation_weights
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.segmentation_plots import write_segmentation_plots

EVAL_STAGES = ("val", "test")
SHOWN_SAMPLES = 4
DICE_SMOOTHING = 1.0


def dice_loss(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """1 - mean soft Dice over the classes, on the pixels of ``masks [B, H, W]`` that are not
    ``ignore_index``; ``logits [B, K, H, W]``. Smoothed by one pixel, so a class that is absent
    and not predicted scores 1 rather than 0. No host sync (scatter, not one_hot)."""
    probabilities = logits.float().softmax(dim=1)
    valid = (masks != ignore_index).unsqueeze(1)  # [B, 1, H, W]
    labels = torch.where(valid.squeeze(1), masks, 0).unsqueeze(1)
    truth = torch.zeros_like(probabilities).scatter_(1, labels, 1.0) * valid
    probabilities = probabilities * valid
    overlap = (probabilities * truth).sum(dim=(0, 2, 3))
    sizes = probabilities.sum(dim=(0, 2, 3)) + truth.sum(dim=(0, 2, 3))
    return 1 - ((2 * overlap + DICE_SMOOTHING) / (sizes + DICE_SMOOTHING)).mean()


def confusion_update(
    confusion: torch.Tensor, predicted: torch.Tensor, masks: torch.Tensor, ignore_index: int
) -> None:
    """Add the (true, predicted) pixel counts of ``masks``/``predicted`` [B, H, W] into
    ``confusion`` [K, K] int64 in place, skipping ``ignore_index``, without a host sync."""
    k = confusion.shape[0]
    valid = masks != ignore_index
    pairs = torch.where(valid, masks * k + predicted, k * k).flatten()  # k*k: dropped
    counts = torch.zeros(k * k + 1, dtype=torch.int64, device=confusion.device)
    counts.index_add_(0, pairs, torch.ones_like(pairs))
    confusion += counts[:-1].view(k, k)


class ConfusionScoring:
    """Validation and test epochs scored from one integer confusion matrix of true against
    predicted labels, for a task with ``hparams.num_classes``, ``hparams.ignore_index`` and
    ``class_names``; mixed in before the task's base. :meth:`track_confusion` (in ``__init__``)
    registers ``confusion [K, K]`` int64 on the device; the steps add to it with
    :meth:`count_labels` and the epoch's end reads :meth:`epoch_scores`, summed over processes
    (DDP-exact: the numbers of :meth:`make_evaluator`'s evaluator). :attr:`last_confusion` keeps
    each stage's matrix on the CPU for the plots."""

    def track_confusion(self, num_classes: int) -> None:
        """Register the zeroed ``confusion`` buffer (not saved in checkpoints)."""
        self.register_buffer(
            "confusion", torch.zeros(num_classes, num_classes, dtype=torch.int64), persistent=False
        )
        self.last_confusion: dict[str, torch.Tensor] = {}

    def count_labels(self, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        """Add the (true, predicted) counts of label maps ``[B, ...]`` (int64, same shape) to
        ``confusion``, skipping ``ignore_index``, without a host sync."""
        confusion_update(self.confusion, predicted, labels, self.hparams.ignore_index)

    def epoch_scores(self, stage: str) -> dict[str, float]:
        """:func:`semantic_scores` of the epoch's confusion matrix summed over processes, which
        is kept as ``last_confusion[stage]``."""
        confusion = self.confusion
        if self.trainer.world_size > 1:
            confusion = self.trainer.strategy.reduce(confusion.clone(), reduce_op="sum")
        self.last_confusion[stage] = confusion.cpu()
        return semantic_scores(self.last_confusion[stage])

    def make_evaluator(self) -> SegmentationEvaluator:
        """mIoU, fwIoU, per-class IoU and pixel (or point) accuracy from one confusion matrix."""
        return SegmentationEvaluator(self.hparams.num_classes, self.hparams.ignore_index)

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        """Per-class IoU bars and CSV of an ``evaluate`` stage."""
        return write_segmentation_plots(
            "evaluate", evaluation.details, None, self.class_names, Path(directory)
        )


@TASKS.register("semantic_segmentation", batch=SegmentationBatch)
class SemanticSegmentationTask(ConfusionScoring, LabelledDataTask):
    """Label every pixel of ``[B, C, H, W]`` images with one of ``num_classes`` classes, with a
    net from the segmentation family (``visionflow list nets``); ``in_channels``, ``image_size``,
    ``class_names``: see :class:`LabelledDataTask`."""

    checkpoint_monitor = ("val/mIoU", "max")

    def __init__(
        self,
        num_classes: int,
        net: str = "unet",
        net_args: dict[str, Any] | None = None,
        weights: str | None = None,
        ignore_index: int = IGNORE_INDEX,
        class_weights: list[float] | None = None,
        dice_weight: float = 0.0,
        aux_weight: float = 0.4,
        inference: Literal["whole", "slide"] = "whole",
        window: list[int] | None = None,
        stride: list[int] | None = None,
        optimizer: OptimizerConfig = OptimizerConfig(lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **data)
        self.save_hyperparameters()
        _check_arguments(self.hparams)
        self.net = build_segmentation_net(
            net, num_classes=num_classes, in_channels=self.hparams.in_channels, net_args=net_args
        )
        if weights and not self.restoring_checkpoint:
            load_segmentation_weights(self.net, net, weights)
        self.register_buffer(
            "class_weight_values",
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32),
            persistent=False,
        )
        self.losses = torch.nn.ModuleDict(
            {
                f"{stage}_loss": MeanMetric(nan_strategy="disable")
                for stage in ("train", *EVAL_STAGES)
            }
        )
        self.track_confusion(num_classes)
        self.samples: dict[str, tuple[torch.Tensor, ...]] = {}

    # ------------------------------------------------------------------------------ forward

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, C, H, W] -> logits [B, K, H, W]`` (whole image or sliding window)."""
        h = self.hparams
        if h.inference == "slide" and _larger_than(images, h.window):
            return self._slide(images)
        return main_logits(self.net(images))

    def _slide(self, images: torch.Tensor) -> torch.Tensor:
        """Logits averaged over ``window`` crops every ``stride`` pixels (edges included)."""
        (height, width), (win_h, win_w) = images.shape[-2:], self.hparams.window
        stride_h, stride_w = self.hparams.stride or self.hparams.window
        logits = images.new_zeros(images.shape[0], self.hparams.num_classes, height, width)
        hits = images.new_zeros(1, 1, height, width)
        for top in _starts(height, win_h, stride_h):
            for left in _starts(width, win_w, stride_w):
                crop = images[..., top : top + win_h, left : left + win_w]
                logits[..., top : top + win_h, left : left + win_w] += main_logits(
                    self.net(crop)
                ).float()
                hits[..., top : top + win_h, left : left + win_w] += 1
        return logits / hits

    def loss(self, outputs: Any, masks: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (+ Dice, + auxiliary head) of the net's ``outputs`` against ``masks``."""
        h = self.hparams
        logits = main_logits(outputs)
        loss = F.cross_entropy(
            logits.float(), masks, weight=self.class_weight_values, ignore_index=h.ignore_index
        )
        if h.dice_weight:
            loss = loss + h.dice_weight * dice_loss(logits, masks, h.ignore_index)
        if isinstance(outputs, Mapping) and outputs.get("aux") is not None:
            loss = loss + h.aux_weight * F.cross_entropy(
                outputs["aux"].float(),
                masks,
                weight=self.class_weight_values,
                ignore_index=h.ignore_index,
            )
        return loss

    # -------------------------------------------------------------------------------- steps

    def training_step(self, batch: SegmentationBatch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.net(batch.images), batch.masks)
        self.losses["train_loss"].update(loss.detach().expand(len(batch)))
        return loss

    def _evaluation_step(self, batch: SegmentationBatch, stage: str) -> None:
        logits = self(batch.images)
        self.losses[f"{stage}_loss"].update(self.loss(logits, batch.masks).expand(len(batch)))
        predicted = logits.argmax(dim=1)
        self.count_labels(predicted, batch.masks)
        if stage not in self.samples:  # kept on the device until the epoch ends
            shown = slice(0, SHOWN_SAMPLES)
            self.samples[stage] = (batch.images[shown], batch.masks[shown], predicted[shown])

    def validation_step(self, batch: SegmentationBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: SegmentationBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def predict_step(self, batch: SegmentationBatch, batch_idx: int) -> torch.Tensor:
        """Predicted labels ``[B, H, W]``."""
        return self(batch.images).argmax(dim=1)

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation("test")

    def _start_evaluation(self, stage: str) -> None:
        self.confusion.zero_()
        self.samples.pop(stage, None)

    def on_train_epoch_end(self) -> None:
        self._log_loss("train")

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _log_loss(self, stage: str) -> None:
        if self.losses[f"{stage}_loss"].update_called:
            self.log(
                f"{stage}/loss",
                self.losses[f"{stage}_loss"].compute(),
                prog_bar=stage != "test",
                sync_dist=True,
            )
            self.losses[f"{stage}_loss"].reset()

    def _log_evaluation(self, stage: str) -> None:
        """Log the loss and the confusion matrix's scores (summed over processes)."""
        self._log_loss(stage)
        if stage in self.samples:
            self.samples[stage] = tuple(t.cpu() for t in self.samples[stage])
        scores = self.epoch_scores(stage)
        for name in ("mIoU", "fwIoU", "pixel_acc", "mean_acc"):
            self.log(f"{stage}/{name}", scores[name], prog_bar=name == "mIoU", sync_dist=True)

    # ------------------------------------------------------------------ evaluation contract

    def evaluation_step(self, batch: SegmentationBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(predicted labels [B, H, W], masks [B, H, W])`` int64 on the CPU."""
        return self(batch.images).argmax(dim=1).cpu(), batch.masks.cpu()

    # ---------------------------------------------------------------------------- artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """``<split>_class_iou.png/.csv`` and ``<split>_samples.png`` of the last val (after
        fit, validate) or test epoch; nothing for other stages."""
        split = {"fit": "val", "validate": "val", "test": "test"}.get(stage)
        if split not in self.last_confusion:
            return []
        return write_segmentation_plots(
            split,
            self.last_confusion[split],
            self.samples.get(split),
            self.class_names,
            Path(directory),
        )


def main_logits(outputs: Any) -> torch.Tensor:
    """The logits ``[B, K, H, W]`` of a net's output (a tensor, or torchvision's dict)."""
    return outputs["out"] if isinstance(outputs, Mapping) else outputs


def _larger_than(images: torch.Tensor, window: list[int]) -> bool:
    return images.shape[-2] > window[0] or images.shape[-1] > window[1]


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window offsets covering ``0..size`` every ``stride``, the last one flush with the end."""
    if size <= window:
        return [0]
    starts = list(range(0, size - window, stride))
    return [*starts, size - window]


def _check_arguments(h: Any) -> None:
    """Raise SpecError naming the first bad argument."""
    checks = [
        (h.num_classes >= 2, "num_classes", f"must be >= 2, got {h.num_classes}"),
        (
            h.class_weights is None or len(h.class_weights) == h.num_classes,
            "class_weights",
            f"{len(h.class_weights or [])} weights for num_classes={h.num_classes}",
        ),
        (
            h.dice_weight >= 0 and h.aux_weight >= 0,
            "dice_weight",
            f"dice_weight and aux_weight must be >= 0, got {h.dice_weight} and {h.aux_weight}",
        ),
        (
            h.inference == "whole" or (h.window and len(h.window) == 2 and min(h.window) > 0),
            "window",
            "inference: slide needs window: [height, width] in pixels",
        ),
        (
            h.stride is None or (len(h.stride) == 2 and min(h.stride) > 0),
            "stride",
            f"expected [height, width] > 0, got {h.stride}",
        ),
    ]
    for ok, key, message in checks:
        if not ok:
            raise SpecError(f"{key}: {message}")
