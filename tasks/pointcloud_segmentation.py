"""Point-cloud segmentation: label every point of a cloud with one of ``num_classes`` parts.

    task = PointCloudSegmentationTask(num_classes=10, net="pointnet2_seg")
    trainer.fit(task, datamodule)  # PointCloudSegmentationBatch(points [B, N, 3], point_labels [B, N])

Loss: per-point cross-entropy over the valid points (index < ``lengths``) whose label is not
``ignore_index``. Logged once per epoch: ``{train,val,test}/loss``; ``val|test/mIoU``, ``/acc``
(overall point accuracy) and ``/IoU/<class>`` from one integer confusion matrix (summed over
processes; scored by :func:`visionflow.evaluation.semantic.semantic_scores`, as the evaluator of
:meth:`make_evaluator` and ``visionflow eval`` score it). After ``test``, :meth:`save_artifacts`
writes the first test batch's clouds coloured by true and predicted part (``.ply``) and a PNG of
them side by side. Training steps read nothing back from the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from visionflow.batches import IGNORE_INDEX, PointCloudSegmentationBatch
from visionflow.errors import SpecError
from visionflow.mesh_files import write_point_cloud
from visionflow.plots import save_figure
from visionflow.registry import TASKS
from visionflow.tasks.base import LabelledDataTask
from visionflow.tasks.nets.families import POINTCLOUD_SEGMENTATION_NETS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.pointclouds import (
    EpochMeans,
    StepsByStage,
    build_family_net,
    plot_point_clouds,
)
from visionflow.tasks.segmentation import ConfusionScoring
from visionflow.tasks.segmentation_plots import color_labels, write_segmentation_plots

#: clouds of the first test batch shown in the PNG
SHOWN_CLOUDS = 4


def counted_labels(batch: PointCloudSegmentationBatch, ignore_index: int) -> torch.Tensor:
    """``point_labels [B, N]`` with the padded points (index >= ``lengths``) set to
    ``ignore_index``, so no loss or score counts them."""
    if batch.lengths is None:
        return batch.point_labels
    count = batch.point_labels.shape[1]
    padded = torch.arange(count, device=batch.lengths.device) >= batch.lengths[:, None]
    return batch.point_labels.masked_fill(padded, ignore_index)


@TASKS.register("pointcloud_segmentation", batch=PointCloudSegmentationBatch)
class PointCloudSegmentationTask(ConfusionScoring, StepsByStage, LabelledDataTask):
    """Label every point of clouds ``[B, N, C]`` with one of ``num_classes`` classes, with a
    net of the ``pointcloud_segmentation`` family (``visionflow list nets``)."""

    checkpoint_monitor = ("val/mIoU", "max")

    def __init__(
        self,
        num_classes: int,
        net: str = "pointnet_seg",
        net_args: dict[str, Any] | None = None,
        ignore_index: int = IGNORE_INDEX,
        export_clouds: int = 4,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3, weight_decay=1e-4),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, num_classes=num_classes, **data)
        self.save_hyperparameters()
        if num_classes < 2 or export_clouds < 0:
            raise SpecError(
                "num_classes / export_clouds: need >= 2 and >= 0, "
                f"got {num_classes}, {export_clouds}"
            )
        if 0 <= ignore_index < num_classes:
            raise SpecError(f"ignore_index: {ignore_index} is a class of 0..{num_classes - 1}")
        self.net = build_family_net(
            POINTCLOUD_SEGMENTATION_NETS,
            net,
            net_args,
            num_classes=num_classes,
            in_channels=self.hparams.in_channels,
        )
        self.epoch_means = EpochMeans(["loss"])
        self.track_confusion(num_classes)
        self.shown: tuple[list[torch.Tensor], ...] | None = None

    def forward(self, points: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``points [B, N, C] -> logits [B, N, K]``."""
        return self.net(points, lengths)

    def _step(
        self, batch: PointCloudSegmentationBatch, stage: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.points, batch.lengths)  # [B, N, K]
        labels = counted_labels(batch, self.hparams.ignore_index)
        loss = F.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=self.hparams.ignore_index
        )
        self.epoch_means.update(stage, {"loss": loss.expand(len(logits))})
        if stage != "train":
            self.count_labels(logits.argmax(-1), labels)
        return logits, loss

    def test_step(self, batch: PointCloudSegmentationBatch, batch_idx: int) -> None:
        logits, _ = self._step(batch, "test")
        if batch_idx == 0:  # kept on the device until the epoch ends
            self.shown = (batch.points, batch.point_labels, logits.argmax(-1), batch.lengths)

    def predict_step(self, batch: PointCloudSegmentationBatch, batch_idx: int) -> torch.Tensor:
        """Predicted labels ``[B, N]`` (padded points' labels are meaningless)."""
        return self(batch.points, batch.lengths).argmax(-1)

    def on_validation_epoch_start(self) -> None:
        self.confusion.zero_()

    def on_test_epoch_start(self) -> None:
        self.confusion.zero_()
        self.shown = None

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_scores("test")
        if self.shown is not None:
            self.shown = clouds_of(*(t.cpu() for t in self.shown[:3]), self.shown[3])

    def _log_scores(self, stage: str) -> None:
        """``<stage>/mIoU``, ``/acc`` and ``/IoU/<class>`` of the epoch's confusion matrix."""
        scores = self.epoch_scores(stage)
        named = {"mIoU": scores["mIoU"], "acc": scores["pixel_acc"]}
        named |= {f"IoU/{name}": scores[f"IoU/{k}"] for k, name in enumerate(self.class_names)}
        for name, value in named.items():
            if value == value:  # a class neither present nor predicted has no IoU (NaN)
                self.log(f"{stage}/{name}", value, prog_bar=name == "mIoU", sync_dist=True)

    # ------------------------------------------------------------------ evaluation contract

    def evaluation_step(
        self, batch: PointCloudSegmentationBatch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(predicted [B, 1, N], labels [B, 1, N])`` int64 on the CPU: each cloud a one-row
        label map, padded points ``ignore_index``."""
        predicted = self(batch.points, batch.lengths).argmax(-1)
        labels = counted_labels(batch, self.hparams.ignore_index)
        return predicted[:, None].cpu(), labels[:, None].cpu()

    # ---------------------------------------------------------------------------- artifacts

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """``<split>_class_iou.png/.csv`` of the last val (after fit, validate) or test epoch;
        after test also ``part_segmentation.png`` (true vs predicted parts of the first test
        batch) and its first ``export_clouds`` clouds as ``pointclouds/{true,pred}_<k>.ply``."""
        split = {"fit": "val", "validate": "val", "test": "test"}.get(stage)
        if split not in self.last_confusion:
            return []
        directory = Path(directory)
        paths = write_segmentation_plots(
            split, self.last_confusion[split], None, self.class_names, directory
        )
        if split == "test" and self.shown is not None:
            paths += self._save_test_clouds(directory)
        return paths

    def _save_test_clouds(self, directory: Path) -> list[Path]:
        points, truth, predicted = self.shown
        k = self.hparams.num_classes
        colors = {
            "true": [color_labels(labels, k) for labels in truth],
            "pred": [color_labels(labels, k) for labels in predicted],
        }
        figure = plot_point_clouds(
            points[:SHOWN_CLOUDS],
            points[:SHOWN_CLOUDS],
            colors=(colors["true"][:SHOWN_CLOUDS], colors["pred"][:SHOWN_CLOUDS]),
        )
        shown_labels = torch.cat([*truth[:SHOWN_CLOUDS], *predicted[:SHOWN_CLOUDS]])
        add_part_legend(figure, shown_labels.unique().tolist(), self.class_names)
        paths = [save_figure(figure, directory / "part_segmentation.png", dpi=100)]
        for name, shown in colors.items():
            paths += [
                write_point_cloud(directory / "pointclouds" / f"{name}_{i}.ply", cloud, rgb)
                for i, (cloud, rgb) in enumerate(zip(points[: self.hparams.export_clouds], shown))
            ]
        return paths


def add_part_legend(figure: Any, labels: list[int], class_names: list[str]) -> None:
    """A legend below ``figure``: the colour and name of each of ``labels``."""
    from matplotlib.patches import Patch

    k = len(class_names)
    handles = [
        Patch(color=color_labels(torch.tensor([label]), k)[0], label=class_names[label])
        for label in labels
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5))


def clouds_of(
    points: torch.Tensor,
    point_labels: torch.Tensor,
    predicted: torch.Tensor,
    lengths: torch.Tensor | None,
) -> tuple[list[torch.Tensor], ...]:
    """Per cloud without its padding: ``([N_i, 3] points, [N_i] labels, [N_i] predictions)``."""
    counts = [points.shape[1]] * len(points) if lengths is None else lengths.tolist()
    return tuple(
        [values[i, :count] for i, count in enumerate(counts)]
        for values in (points[..., :3], point_labels, predicted)
    )
