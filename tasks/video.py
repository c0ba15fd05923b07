"""Video classification: clips ``[B, C, T, H, W]`` into ``num_classes`` with a net from the
``video`` family (fusion baselines, C3D, R3D/MC3/R(2+1)D, I3D inflation, CNN+LSTM, SlowFast).

    task = VideoClassificationTask(num_classes=6, net="r3d_18", net_args={"width": 16})
    trainer.fit(task, datamodule)   # VideoBatch(clips [B, C, T, H, W], targets [B], video_index [B])

:class:`ClipClassifier` is what this task and the two-stream task (``tasks/two_stream.py``)
share: the training tally, clip and video accuracy, the evaluation contract and the plots. A
subclass says how a batch becomes ``(loss, class probabilities)``.

Logged once per epoch: ``train/loss train/acc`` (clips), ``val/loss val/clip_acc val/video_acc``
and the test equivalents, plus ``_top5`` variants when there are more than 5 classes. Video
accuracy averages the probabilities of a video's ``num_clips`` clips (datamodule argument). In
a multi-process fit each process scores the clips it saw; the ``evaluate`` stage is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionflow.batches import VideoBatch
from visionflow.errors import SpecError
from visionflow.evaluation import Evaluation, VideoAccuracyEvaluator
from visionflow.registry import TASKS
from visionflow.tasks.base import VisionTask
from visionflow.tasks.classification import classification_loss
from visionflow.tasks.confusion_plots import write_confusion_matrix
from visionflow.tasks.nets.families import VIDEO_NETS, checked_builder
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.tally import TrainingTally

VIDEO_NET_ARGS = ("num_classes", "in_channels", "clip_length", "dropout")
#: the video tasks' default optimizer and schedule
VIDEO_OPTIMIZER = OptimizerConfig(name="adamw", lr=1e-3, weight_decay=1e-4)
VIDEO_SCHEDULER = SchedulerConfig()


def build_video_net(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    clip_length: int,
    dropout: float,
    net_args: dict[str, Any] | None,
    where: str = "net",
) -> nn.Module:
    """The registered video net ``name``; errors name ``where`` or ``<where>_args.<key>``."""
    if not 0 <= dropout < 1:
        raise SpecError(f"dropout: must be in [0, 1), got {dropout}")
    net_args = dict(net_args or {})
    builder = checked_builder(VIDEO_NETS, name, net_args, len(VIDEO_NET_ARGS), key=where)
    return builder(
        num_classes=num_classes,
        in_channels=in_channels,
        clip_length=clip_length,
        dropout=dropout,
        **net_args,
    )


class ClipClassifier(VisionTask):
    """Base of the video tasks: steps, metrics, evaluation contract; see the module docstring.
    Subclasses implement :meth:`loss_and_scores`, name ``num_classes`` and forward the clip
    arguments declared here (``**clips``; the spec checker reads them here), which they find in
    ``self.hparams`` after ``save_hyperparameters()``.

    ``in_channels``: channels per frame; ``clip_length``: frames T per clip; ``dropout``: before
    the classifier; ``label_smoothing``: of the cross-entropy, in ``[0, 1)``."""

    checkpoint_monitor = ("val/video_acc", "max")

    def __init__(
        self,
        optimizer: Any,
        scheduler: Any,
        /,
        *,
        num_classes: int,
        in_channels: int = 3,
        clip_length: int = 8,
        class_names: list[str] | None = None,
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__(optimizer, scheduler)
        checks = [
            (num_classes >= 2, f"num_classes: must be >= 2, got {num_classes}"),
            (
                class_names is None or len(class_names) == num_classes,
                f"class_names: {len(class_names or [])} names for num_classes={num_classes}",
            ),
            (
                0 <= label_smoothing < 1,
                f"label_smoothing: must be in [0, 1), got {label_smoothing}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SpecError(message)
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])
        self.label_smoothing = label_smoothing
        self.train_tally = TrainingTally()
        self.evaluators = {"val": self.make_evaluator(), "test": self.make_evaluator()}
        self.outputs: dict[str, list[tuple[torch.Tensor, ...]]] = {"val": [], "test": []}
        self.test_evaluation: Evaluation | None = None

    def clip_net(self, net: str, net_args: dict[str, Any] | None, where: str = "net") -> nn.Module:
        """The ``video`` net ``net`` for this task's clips (``num_classes``, ``in_channels``,
        ``clip_length``, ``dropout`` from ``self.hparams``): ``[B, C, T, H, W] -> [B, K]``."""
        h = self.hparams
        return build_video_net(
            net,
            num_classes=h.num_classes,
            in_channels=h.in_channels,
            clip_length=h.clip_length,
            dropout=h.dropout,
            net_args=net_args,
            where=where,
        )

    def loss_and_scores(self, batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scalar loss, class probabilities [B, K])`` of a batch of normalized clips."""
        raise NotImplementedError

    def scored(self, batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`loss_and_scores` of a batch as the loaders deliver it, moved to the device:
        its uint8 clips normalized there first (``VideoBatch.normalized``). Every step comes
        through here (a Lightning ``on_after_batch_transfer`` would miss the evaluate stage's
        ``evaluation_step``, and Lightning warns on each fit that a task overrides it)."""
        return self.loss_and_scores(batch.normalized())

    def loss_of(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return classification_loss(logits, targets, "cross_entropy", self.label_smoothing)

    # ------------------------------------------------------------------------------- steps

    def training_step(self, batch: VideoBatch, batch_idx: int) -> torch.Tensor:
        loss, scores = self.scored(batch)
        self.train_tally.update(loss, scores, batch.targets)
        return loss

    def validation_step(self, batch: VideoBatch, batch_idx: int) -> None:
        self._keep("val", batch)

    def test_step(self, batch: VideoBatch, batch_idx: int) -> None:
        self._keep("test", batch)

    def _keep(self, stage: str, batch: VideoBatch) -> None:
        """Hold the batch's results on the device until the epoch ends (no read-back)."""
        loss, scores = self.scored(batch)
        self.outputs[stage].append(
            (loss.detach().expand(len(batch)), scores.detach(), batch.targets, batch.video_index)
        )

    def on_train_epoch_end(self) -> None:
        if self.train_tally.count:
            totals = self.train_tally.compute(
                lambda sums: self.trainer.strategy.reduce(sums, reduce_op="sum")
            )
            for name, value in totals.items():
                self.log(f"train/{name}", value, prog_bar=True, sync_dist=True)
        self.train_tally.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self.test_evaluation = self._log_evaluation("test")

    def _log_evaluation(self, stage: str) -> Evaluation | None:
        outputs, self.outputs[stage] = self.outputs[stage], []
        if not outputs or self.trainer.sanity_checking:
            return None
        evaluator = self.evaluators[stage]
        evaluator.reset()
        for losses, scores, targets, videos in outputs:
            evaluator.process(
                {"scores": scores.cpu(), "loss": float(losses[0])},
                {"labels": targets.cpu(), "video": videos.cpu()},
            )
        evaluation = evaluator.evaluate()
        for name, value in evaluation.metrics.items():
            self.log(f"{stage}/{name}", value, prog_bar=stage == "val")
        return evaluation

    def predict_step(self, batch: VideoBatch, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``[B, K]`` of each clip."""
        return self.scored(batch)[1]

    # ------------------------------------------------------------- evaluation contract

    def make_evaluator(self) -> VideoAccuracyEvaluator:
        """Clip and video accuracy (top-1, top-5), loss, video confusion matrix."""
        return VideoAccuracyEvaluator(len(self.class_names))

    def evaluation_step(self, batch: VideoBatch) -> tuple[dict[str, Any], dict[str, Any]]:
        """``({"scores": [B, K], "loss": batch mean}, {"labels": [B], "video": [B]})`` on CPU."""
        loss, scores = self.scored(batch)
        return (
            {"scores": scores.detach().float().cpu(), "loss": float(loss.detach())},
            {"labels": batch.targets.cpu(), "video": batch.video_index.cpu()},
        )

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After ``test``: the video-level confusion matrix (PNG and CSV)."""
        if stage != "test" or self.test_evaluation is None:
            return []
        return self.save_evaluation(self.test_evaluation, directory)

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        """The video-level confusion matrix (PNG and CSV) in ``directory``."""
        return write_confusion_matrix(
            evaluation.details, self.class_names, directory, counted="videos"
        )


@TASKS.register("video_classification", batch=VideoBatch)
class VideoClassificationTask(ClipClassifier):
    """Classify clips ``[B, C, T, H, W]`` with a net of the ``video`` family (see
    ``visionflow list nets``); ``net_args.weights`` of ``i3d_resnet`` is not read again when a
    checkpoint is restored."""

    def __init__(
        self,
        num_classes: int,
        net: str = "r3d_18",
        net_args: dict[str, Any] | None = None,
        optimizer: OptimizerConfig = VIDEO_OPTIMIZER,
        scheduler: SchedulerConfig = VIDEO_SCHEDULER,
        **clips: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **clips)
        self.save_hyperparameters()
        net_args = dict(net_args or {})
        if self.restoring_checkpoint:
            net_args.pop("weights", None)
        self.net = self.clip_net(net, net_args)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips [B, C, T, H, W] -> logits [B, K]``."""
        return self.net(clips)

    def loss_and_scores(self, batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.clips)
        return self.loss_of(logits, batch.targets), logits.float().softmax(dim=-1)
