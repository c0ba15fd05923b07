"""Point-cloud tasks: classify point clouds (PointNet), and predict a point cloud from an image.

    task = PointCloudClassificationTask(num_classes=5, net="pointnet")
    trainer.fit(task, datamodule)   # PointCloudBatch(points [B, N, 3], labels [B], lengths)

    task = ImageToPointCloudTask(in_channels=3, num_points=1024)
    trainer.fit(task, datamodule)   # ImageToPointCloudBatch(images [B, C, H, W], points [B, M, 3])

Logged once per epoch: classification ``{train,val,test}/loss`` and ``/acc``; image -> point
cloud ``{train,val,test}/loss`` (the Chamfer distance) and ``val/f1@t``, ``test/f1@t`` at the
first F-score threshold. Training steps read nothing back from the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from visionflow.batches import ImageToPointCloudBatch, PointCloudBatch
from visionflow.errors import SpecError
from visionflow.evaluation import Evaluation
from visionflow.evaluation.classification import ClassificationEvaluator
from visionflow.evaluation.pointclouds import DEFAULT_THRESHOLDS, PointCloudEvaluator
from visionflow.mesh_files import write_point_cloud
from visionflow.ops import chamfer_distance, f_score
from visionflow.plots import save_figure
from visionflow.registry import TASKS
from visionflow.tasks.base import LabelledDataTask, VisionTask
from visionflow.tasks.nets.families import (
    IMAGE_TO_POINTCLOUD_NETS,
    POINTCLOUD_NETS,
    checked_builder,
)
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig

STAGES = ("train", "val", "test")


def build_family_net(
    family: Any, name: str, net_args: dict[str, Any] | None, **provided: Any
) -> torch.nn.Module:
    """Net ``name`` of ``family`` from ``provided`` (data) arguments plus ``net_args`` (checked
    first: an unknown key is a SpecError naming ``net_args.<key>``)."""
    net_args = dict(net_args or {})
    builder = checked_builder(family, name, net_args, provided=provided)
    for key in provided:
        if key in net_args:
            raise SpecError(f"net_args.{key}: comes from the data; set it on the task instead")
    return builder(**provided, **net_args)


class EpochMeans(torch.nn.Module):
    """Per-stage means of named values, accumulated on the device, logged at the epoch's end as
    ``<stage>/<name>``."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = list(names)
        self.means = torch.nn.ModuleDict(
            {
                f"{stage}_{index}": MeanMetric(nan_strategy="disable")
                for stage in STAGES
                for index in range(len(names))
            }
        )

    def update(self, stage: str, values: dict[str, torch.Tensor]) -> None:
        """``values``: name -> per-sample values ``[B]``."""
        for name, value in values.items():
            self.means[f"{stage}_{self.names.index(name)}"].update(value.detach())

    def log_stage(self, task: VisionTask, stage: str) -> None:
        for index, name in enumerate(self.names):
            metric = self.means[f"{stage}_{index}"]
            if metric.update_called:
                task.log(
                    f"{stage}/{name}", metric.compute(), prog_bar=stage != "test", sync_dist=True
                )
                metric.reset()


class StepsByStage:
    """Lightning's step hooks through one ``_step(batch, stage)``, and the epoch-end hooks that
    log ``self.epoch_means``."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[1]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self.epoch_means.log_stage(self, "train")

    def on_validation_epoch_end(self) -> None:
        self.epoch_means.log_stage(self, "val")

    def on_test_epoch_end(self) -> None:
        self.epoch_means.log_stage(self, "test")


class LabelClassifier(StepsByStage):
    """Steps, predictions and evaluation of a task that classifies each sample of a batch with
    ``labels [B]``; the task gives ``logits(batch) -> [B, K]`` and logs ``loss`` and ``acc``."""

    checkpoint_monitor = ("val/acc", "max")

    def build_classifier(self, family: Any, net: str, net_args: Any, **provided: Any) -> None:
        """``self.net``: net ``net`` of ``family`` for ``provided["num_classes"]`` >= 2 classes
        (plus the other ``provided`` data arguments); ``self.epoch_means``: loss and acc."""
        if provided["num_classes"] < 2:
            raise SpecError(f"num_classes: must be >= 2, got {provided['num_classes']}")
        self.net = build_family_net(family, net, net_args, **provided)
        self.epoch_means = EpochMeans(["loss", "acc"])

    def logits(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def _step(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logits(batch)  # [B, K]
        loss = F.cross_entropy(logits.float(), batch.labels)
        hits = (logits.argmax(-1) == batch.labels).float()  # [B]
        self.epoch_means.update(stage, {"loss": loss.expand(len(hits)), "acc": hits})
        return logits, loss

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``[B, K]``."""
        return self.logits(batch).float().softmax(-1)

    def make_evaluator(self) -> ClassificationEvaluator:
        return ClassificationEvaluator(self.hparams.num_classes)

    def evaluation_step(self, batch: Any) -> tuple[dict[str, Any], torch.Tensor]:
        """``({"top_k": [B, min(5, K)], "loss": batch mean}, labels [B])`` on the CPU."""
        logits = self.logits(batch).float().detach()
        top_k = logits.topk(min(5, self.hparams.num_classes), dim=-1).indices
        return (
            {"top_k": top_k.cpu(), "loss": float(F.cross_entropy(logits, batch.labels))},
            batch.labels.cpu(),
        )


@TASKS.register("pointcloud_classification", batch=PointCloudBatch)
class PointCloudClassificationTask(LabelClassifier, LabelledDataTask):
    """Classify point clouds ``[B, N, C]`` into ``num_classes`` with a ``pointcloud`` net."""

    def __init__(
        self,
        num_classes: int,
        num_points: int = 1024,
        net: str = "pointnet",
        net_args: dict[str, Any] | None = None,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3, weight_decay=1e-4),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **data)
        self.save_hyperparameters()
        self.build_classifier(
            POINTCLOUD_NETS,
            net,
            net_args,
            num_classes=num_classes,
            in_channels=self.hparams.in_channels,
        )

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``points [B, N, C] -> logits [B, K]``."""
        return self.net(points, lengths)

    def logits(self, batch: PointCloudBatch) -> torch.Tensor:
        return self(batch.points, batch.lengths)


@TASKS.register("image_to_pointcloud", batch=ImageToPointCloudBatch)
class ImageToPointCloudTask(StepsByStage, LabelledDataTask):
    """Predict ``num_points`` surface points ``[B, P, 3]`` of the object an image shows; the loss
    is the Chamfer distance (:func:`visionflow.ops.chamfer_distance`), the metrics F1@t."""

    def __init__(
        self,
        num_classes: int = 1,
        num_points: int = 1024,
        net: str = "psgn",
        net_args: dict[str, Any] | None = None,
        f_score_thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
        export_clouds: int = 8,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **data)
        self.save_hyperparameters()
        if num_points < 1 or export_clouds < 0:
            raise SpecError(
                f"num_points / export_clouds: need >= 1 and >= 0, got {num_points}, {export_clouds}"
            )
        self.thresholds = tuple(PointCloudEvaluator(f_score_thresholds).thresholds)
        in_channels = self.hparams.in_channels
        self.net = build_family_net(
            IMAGE_TO_POINTCLOUD_NETS, net, net_args, in_channels=in_channels, num_points=num_points
        )
        self.epoch_means = EpochMeans(["loss", f"f1@{self.thresholds[0]:g}"])
        self.last_predictions: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, C, H, W] -> points [B, P, 3]``."""
        return self.net(images)

    def _step(self, batch: ImageToPointCloudBatch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        predicted = self(batch.images).float()  # [B, P, 3]
        loss, _ = chamfer_distance(predicted, batch.points, y_lengths=batch.lengths)
        values = {"loss": loss.expand(len(predicted))}
        if stage != "train":
            f1 = f_score(
                predicted, batch.points, self.thresholds[:1], target_lengths=batch.lengths
            )["f1"][:, 0]
            values[f"f1@{self.thresholds[0]:g}"] = f1
        self.epoch_means.update(stage, values)
        return predicted, loss

    def test_step(self, batch: ImageToPointCloudBatch, batch_idx: int) -> None:
        predicted, _ = self._step(batch, "test")
        if batch_idx == 0:
            self.last_predictions = (predicted.detach().cpu(), batch.points.cpu())

    def predict_step(self, batch: ImageToPointCloudBatch, batch_idx: int) -> torch.Tensor:
        return self(batch.images)

    def make_evaluator(self) -> PointCloudEvaluator:
        return PointCloudEvaluator(self.thresholds)

    def evaluation_step(
        self, batch: ImageToPointCloudBatch
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Predicted and target clouds, one ``[P, 3]`` / ``[M_i, 3]`` tensor per image, on CPU."""
        predicted = self(batch.images).float().cpu()
        return list(predicted), target_clouds(batch)

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After ``test``: ``pointclouds.png``, predicted vs target clouds of the first batch,
        and its first ``export_clouds`` predictions as ``pointclouds/pred_<k>.ply`` (open3d)."""
        if stage != "test" or self.last_predictions is None:
            return []
        predicted = self.last_predictions[0][: self.hparams.export_clouds]
        return [
            save_figure(
                plot_point_clouds(*self.last_predictions),
                Path(directory) / "pointclouds.png",
                dpi=100,
            )
        ] + [
            write_point_cloud(Path(directory) / "pointclouds" / f"pred_{k}.ply", cloud.numpy())
            for k, cloud in enumerate(predicted)
        ]

    def save_evaluation(self, evaluation: Evaluation, directory: Path) -> list[Path]:
        return []


def target_clouds(batch: ImageToPointCloudBatch) -> list[torch.Tensor]:
    """The batch's target clouds without padding, one ``[M_i, 3]`` tensor each, on the CPU."""
    points = batch.points.cpu()
    if batch.lengths is None:
        return list(points)
    return [cloud[:count] for cloud, count in zip(points, batch.lengths.tolist())]


def plot_point_clouds(
    predicted: Sequence[torch.Tensor],
    target: Sequence[torch.Tensor],
    count: int = 6,
    colors: tuple[Sequence[Any], Sequence[Any]] | None = None,
):
    """A Figure: for up to ``count`` samples, target (top) and predicted (bottom) clouds
    ``[N_i, 3]`` in 3D, coloured by height, or by ``colors`` (target's, predicted's: RGB
    ``[N_i, 3]`` per cloud) when given."""
    from matplotlib.figure import Figure

    count = min(count, len(predicted))
    figure = Figure(figsize=(2.2 * count, 4.4), layout="constrained")
    for column in range(count):
        for row, (cloud, title) in enumerate(
            ((target[column], "target"), (predicted[column], "predicted"))
        ):
            axes = figure.add_subplot(2, count, row * count + column + 1, projection="3d")
            by_height = {"c": cloud[:, 1], "cmap": "viridis"}
            shade = by_height if colors is None else {"c": colors[row][column]}
            axes.scatter(cloud[:, 0], cloud[:, 2], cloud[:, 1], s=1, **shade)
            axes.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1), title=title)
            axes.set_axis_off()
    return figure
