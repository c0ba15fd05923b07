"""Image classification: any registered net, softmax or SVM loss, transfer learning.

    task = ImageClassificationTask(num_classes=10, net="resnet18", net_args={"small_input": True})
    trainer.fit(task, datamodule)  # ImageClassificationBatch(images [B,C,H,W], targets [B])

Logged once per epoch (DDP-synchronized by torchmetrics): ``train/loss train/acc val/loss val/acc
test/loss test/acc``, plus ``val/acc_top5 test/acc_top5`` when there are more than 5 classes.
After a test epoch, ``test_confusion_matrix`` holds the counts ``[K, K]`` (rows: true class) and
``save_artifacts("test", dir)`` writes ``confusion_matrix.png`` and ``confusion_matrix.csv``.
``adversarial: {attack: pgd, epsilon: 0.1, steps: 7}`` trains on adversarial examples instead of
clean ones (:class:`visionflow.tasks.adversarial.AdversarialConfig`; ``epsilon`` in pixel units,
through the data's ``pixel_mean``/``pixel_std``).
Nothing in a training step waits for the GPU or calls ``self.log``: metrics accumulate on the
device and are logged at the epoch's end, which keeps the per-step CPU cost low.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from visionflow.batches import ImageClassificationBatch
from visionflow.errors import RunError, SpecError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.classification import ClassificationEvaluator
from visionflow.registry import TASKS
from visionflow.tasks.adversarial import AdversarialConfig, PixelSpace
from visionflow.tasks.base import LabelledDataTask
from visionflow.tasks.confusion_plots import write_confusion_matrix
from visionflow.tasks.nets import build_net, split_backbone_head, transfer
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig, config_from
from visionflow.tasks.tally import TrainingTally


def multiclass_hinge_loss(
    logits: torch.Tensor, targets: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Multiclass SVM loss (Weston-Watkins, as in CS231n), batch mean of
    ``sum_{j != y} max(0, s_j - s_y + margin)``; ``logits [B, K]``, ``targets [B]``."""
    correct = logits.gather(1, targets[:, None])  # [B, 1]
    margins = (logits - correct + margin).clamp_min(0)  # [B, K]
    margins = margins.scatter(1, targets[:, None], 0.0)  # drop j == y
    return margins.sum(dim=1).mean()


def classification_loss(
    logits: torch.Tensor, targets: torch.Tensor, loss: str, label_smoothing: float = 0.0
) -> torch.Tensor:
    """``cross_entropy`` (softmax classifier) or ``hinge`` (SVM), computed in float32."""
    if loss == "hinge":
        return multiclass_hinge_loss(logits.float(), targets)
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


@TASKS.register("image_classification", batch=ImageClassificationBatch)
class ImageClassificationTask(LabelledDataTask):
    """Classify images ``[B, C, H, W]`` into ``num_classes`` with a net from ``NETS``.

    ``weights`` (a local state_dict file) or ``pretrained`` (torchvision's weights) initialize the
    net; a head trained for another number of classes is replaced. ``freeze_backbone`` trains the
    head only (linear probe); ``backbone_lr_scale`` < 1 fine-tunes the backbone with a lower LR.
    ``optimizer`` and ``scheduler``: see :mod:`visionflow.tasks.optim`; ``in_channels``,
    ``image_size``, ``class_names``: see :class:`LabelledDataTask`.
    """

    def __init__(
        self,
        num_classes: int,
        net: str = "resnet18",
        net_args: dict[str, Any] | None = None,
        loss: Literal["cross_entropy", "hinge"] = "cross_entropy",
        label_smoothing: float = 0.0,
        dropout: float = 0.0,
        optimizer: OptimizerConfig = OptimizerConfig(),
        scheduler: SchedulerConfig = SchedulerConfig(),
        weights: str | None = None,
        pretrained: bool = False,
        freeze_backbone: bool = False,
        backbone_lr_scale: float = 1.0,
        channels_last: bool = False,
        adversarial: AdversarialConfig | None = None,
        pixel_mean: list[float] | None = None,
        pixel_std: list[float] | None = None,
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **data)
        self.save_hyperparameters()
        _check_arguments(self.hparams)
        in_channels = self.hparams.in_channels
        self.net = build_net(
            net,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=self.hparams.image_size,
            dropout=dropout,
            net_args=net_args,
        )
        if not self.restoring_checkpoint:
            self._load_initial_weights()
        if freeze_backbone:
            transfer.freeze_backbone(self.net)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # non-persistent buffers: they follow the task to its device, checkpoints stay as before
        self.register_buffer("pixel_mean", _channel_stats(pixel_mean, 0.0, in_channels), False)
        self.register_buffer("pixel_std", _channel_stats(pixel_std, 1.0, in_channels), False)
        self.adversarial = (
            None if adversarial is None else config_from(adversarial, AdversarialConfig())
        )
        self.epoch_metrics = nn.ModuleDict(_epoch_metrics(num_classes))
        self.train_tally = TrainingTally()
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion_matrix: torch.Tensor | None = None

    def _load_initial_weights(self) -> None:
        hparams = self.hparams
        if hparams.weights:
            report = transfer.load_weights(self.net, hparams.weights)
        elif hparams.pretrained:
            report = transfer.load_pretrained(self.net, hparams.net)
        else:
            return
        head = (
            f"; head re-initialized for {hparams.num_classes} classes"
            if report.head_replaced
            else ""
        )
        rank_zero_info(f"{hparams.net}: loaded {report.loaded_keys} tensors{head}")

    def train(self, mode: bool = True) -> ImageClassificationTask:
        super().train(mode)
        if mode and self.hparams.freeze_backbone:
            transfer.freeze_batchnorm_statistics(self.net)
        return self

    # ------------------------------------------------------------------------------- steps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, C, H, W] -> logits [B, K]``."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _step(
        self, batch: ImageClassificationBatch, stage: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, and on-device metric updates (logged once per epoch, see _log_epoch);
        training keeps a leaner tally than torchmetrics: it runs every step of every fit."""
        images = batch.images
        if stage == "train" and self.adversarial is not None:
            images = self.adversarial_images(batch)
        logits = self(images)  # [B, K]
        loss = classification_loss(
            logits, batch.targets, self.hparams.loss, self.hparams.label_smoothing
        )
        if stage == "train":
            self.train_tally.update(loss, logits, batch.targets)
            return logits, loss
        for key, metric in self.epoch_metrics.items():
            if key == f"{stage}_loss":
                metric.update(loss.detach().expand(len(batch)))  # [B]: a per-image mean
            elif key.startswith(f"{stage}_acc"):
                metric.update(logits.detach(), batch.targets)
        return logits, loss

    @property
    def pixel_space(self) -> PixelSpace:
        """The data's normalization (``pixel_mean``, ``pixel_std``), on the task's device."""
        return PixelSpace(self.pixel_mean, self.pixel_std)

    def adversarial_images(self, batch: ImageClassificationBatch) -> torch.Tensor:
        """The batch's images ``[B, C, H, W]`` attacked as ``adversarial`` says (normalized)."""
        pixels = self.pixel_space.to_pixels(batch.images)
        attacked = self.adversarial.perturb(self.pixel_space.wrap(self), pixels, batch.targets)
        return self.pixel_space.to_inputs(attacked)

    def _log_training_epoch(self) -> None:
        """Log ``train/loss`` and ``train/acc`` (summed over processes) and reset the tally."""
        if self.train_tally.count:
            totals = self.train_tally.compute(
                lambda sums: self.trainer.strategy.reduce(sums, reduce_op="sum")
            )
            for (
                name,
                value,
            ) in totals.items():  # equal on every rank: sync_dist only tells Lightning
                self.log(f"train/{name}", value, prog_bar=True, sync_dist=True)
        self.train_tally.reset()

    def _log_epoch(self, stage: str) -> None:
        """Log ``<stage>/<metric>`` (synchronized across processes by torchmetrics) and reset."""
        for key, metric in self.epoch_metrics.items():
            if key.startswith(f"{stage}_") and metric.update_called:
                # already synchronized; sync_dist only averages equal values (and tells Lightning)
                self.log(
                    key.replace("_", "/", 1),
                    metric.compute(),
                    prog_bar=stage != "test",
                    sync_dist=True,
                )
                metric.reset()

    def training_step(self, batch: ImageClassificationBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[1]

    def validation_step(self, batch: ImageClassificationBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: ImageClassificationBatch, batch_idx: int) -> None:
        logits, _ = self._step(batch, "test")
        self.test_confusion.update(logits, batch.targets)

    def on_train_epoch_end(self) -> None:
        self._log_training_epoch()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()
        self.test_confusion_matrix = None

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
        self.test_confusion_matrix = self.test_confusion.compute().cpu().to(torch.int64)
        self.test_confusion.reset()

    def predict_step(self, batch: ImageClassificationBatch, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``[B, K]``."""
        return self(batch.images).float().softmax(dim=-1)

    # ------------------------------------------------------------- evaluation contract

    def make_evaluator(self) -> ClassificationEvaluator:
        """Top-1 / top-5 accuracy, loss and confusion matrix (see :mod:`visionflow.evaluation`)."""
        return ClassificationEvaluator(self.hparams.num_classes)

    def evaluation_step(
        self, batch: ImageClassificationBatch
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """``({"top_k": [B, min(5, K)] class indices, "loss": batch mean}, targets [B])`` on CPU."""
        logits = self(batch.images)  # [B, K]
        loss = classification_loss(
            logits, batch.targets, self.hparams.loss, self.hparams.label_smoothing
        )
        top_k = logits.float().topk(min(5, self.hparams.num_classes), dim=-1).indices
        return {"top_k": top_k.cpu(), "loss": float(loss)}, batch.targets.cpu()

    # ------------------------------------------------------------------------ optimization

    def parameter_groups(self) -> list[dict[str, Any]]:
        """``backbone`` (LR scaled by backbone_lr_scale; absent when frozen) and ``head`` groups."""
        backbone, head = split_backbone_head(self.net)
        lr = self.optimizer_config.lr
        groups = [{"name": "head", "params": list(head.parameters()), "lr": lr}]
        if not self.hparams.freeze_backbone:
            lr = lr * self.hparams.backbone_lr_scale
            groups.insert(0, {"name": "backbone", "params": backbone, "lr": lr})
        return groups

    # --------------------------------------------------------------------------- artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After ``test``: write ``confusion_matrix.png`` and ``.csv`` into ``directory``
        (atomically) and return their paths; other stages write nothing."""
        if stage != "test":
            return []
        if self.test_confusion_matrix is None:
            raise RunError(
                "save_artifacts('test'): no test epoch has run, so there is no confusion matrix"
            )
        return write_confusion_matrix(self.test_confusion_matrix, self.class_names, directory)

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        """The ``evaluate`` stage's confusion matrix (PNG and CSV) in ``directory``."""
        return write_confusion_matrix(evaluation.details, self.class_names, directory)


def _epoch_metrics(num_classes: int) -> dict[str, Metric]:
    """``<stage>_loss``, ``<stage>_acc`` and, when K > 5, ``<stage>_acc_top5`` for val and test
    (training uses a ``TrainingTally``). Updating them is a few device ops, with no host sync: ``validate_args`` and the
    NaN check would call ``torch.unique``/``.any()`` every step (the loss rejects bad targets)."""

    def accuracy(top_k: int) -> MulticlassAccuracy:
        return MulticlassAccuracy(num_classes, top_k=top_k, average="micro", validate_args=False)

    metrics: dict[str, Metric] = {}
    for stage in ("val", "test"):
        metrics[f"{stage}_loss"] = MeanMetric(nan_strategy="disable")
        metrics[f"{stage}_acc"] = accuracy(1)
        if num_classes > 5:
            metrics[f"{stage}_acc_top5"] = accuracy(5)
    return metrics


def _channel_stats(values: Sequence[float] | None, default: float, channels: int) -> torch.Tensor:
    """``[C]`` float32: ``values`` (one per channel, or one for all), else ``default``."""
    stats = torch.tensor([default] if values is None else list(values), dtype=torch.float32)
    return stats.expand(channels).clone() if len(stats) == 1 else stats


def _check_arguments(h: Any) -> None:
    """Raise SpecError naming the first bad argument."""
    checks = [
        (h.num_classes >= 2, "num_classes", f"must be >= 2, got {h.num_classes}"),
        (h.in_channels >= 1, "in_channels", f"must be >= 1, got {h.in_channels}"),
        (
            0 <= h.label_smoothing < 1,
            "label_smoothing",
            f"must be in [0, 1), got {h.label_smoothing}",
        ),
        (
            h.label_smoothing == 0 or h.loss == "cross_entropy",
            "label_smoothing",
            "applies to the cross_entropy loss only",
        ),
        (0 <= h.dropout < 1, "dropout", f"must be in [0, 1), got {h.dropout}"),
        (not (h.weights and h.pretrained), "pretrained", "set weights or pretrained, not both"),
        (
            h.backbone_lr_scale > 0,
            "backbone_lr_scale",
            f"must be > 0, got {h.backbone_lr_scale} (use freeze_backbone: true to freeze it)",
        ),
        (
            not h.freeze_backbone or h.backbone_lr_scale == 1,
            "backbone_lr_scale",
            "has no effect with freeze_backbone: true",
        ),
        (
            h.pixel_mean is None or len(h.pixel_mean) in (1, h.in_channels),
            "pixel_mean",
            f"needs 1 or in_channels={h.in_channels} values, got {h.pixel_mean}",
        ),
        (
            h.pixel_std is None
            or (len(h.pixel_std) in (1, h.in_channels) and min(h.pixel_std) > 0),
            "pixel_std",
            f"needs 1 or in_channels={h.in_channels} values > 0, got {h.pixel_std}",
        ),
    ]
    for ok, key, message in checks:
        if not ok:
            raise SpecError(f"{key}: {message}")
