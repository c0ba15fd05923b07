"""Voxel tasks: classify occupancy grids (VoxNet), and predict the grid an image shows.

    task = VoxelClassificationTask(num_classes=5, resolution=32)
    trainer.fit(task, datamodule)   # VoxelBatch(voxels [B, 1, R, R, R], labels [B])

    task = ImageToVoxelTask(in_channels=3, resolution=32)
    trainer.fit(task, datamodule)   # ImageToVoxelBatch(images [B, C, H, W], voxels [B, R, R, R])

Logged once per epoch: classification ``{train,val,test}/loss`` and ``/acc``; image -> voxels
``{train,val,test}/loss`` (binary cross-entropy per cell) and ``/iou`` (voxel IoU at
``threshold``). After ``test``, the image -> voxel task cubifies the first test batch's
predicted and true grids (:func:`visionflow.ops.cubify`) and writes them as meshes into the run
directory (``meshes/predicted_<k>.obj``, ``meshes/target_<k>.obj``; open3d, imported there).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from visionflow.batches import ImageToVoxelBatch, VoxelBatch
from visionflow.errors import SpecError
from visionflow.evaluation.voxels import VoxelEvaluator
from visionflow.mesh_files import write_mesh
from visionflow.ops import cubify, voxel_iou
from visionflow.registry import TASKS
from visionflow.tasks.base import LabelledDataTask
from visionflow.tasks.nets.families import IMAGE_TO_VOXEL_NETS, VOXEL_NETS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.pointclouds import (
    EpochMeans,
    LabelClassifier,
    StepsByStage,
    build_family_net,
)

#: a triangle mesh ``(verts float32 [V, 3], faces int64 [F, 3])``
Mesh = tuple[torch.Tensor, torch.Tensor]


@TASKS.register("voxel_classification", batch=VoxelBatch)
class VoxelClassificationTask(LabelClassifier, LabelledDataTask):
    """Classify occupancy grids ``[B, 1, R, R, R]`` into ``num_classes`` with a ``voxel`` net."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        resolution: int = 32,
        net: str = "voxnet",
        net_args: dict[str, Any] | None = None,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3, weight_decay=1e-4),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(
            optimizer, scheduler, num_classes=num_classes, in_channels=in_channels, **data
        )
        self.save_hyperparameters()
        self.build_classifier(
            VOXEL_NETS, net, net_args, num_classes=num_classes, resolution=resolution
        )

    def forward(self, voxels: torch.Tensor) -> torch.Tensor:
        """``voxels [B, 1, R, R, R] -> logits [B, K]``."""
        return self.net(voxels)

    def logits(self, batch: VoxelBatch) -> torch.Tensor:
        return self(batch.voxels)


class ImageReconstructionTask(StepsByStage, LabelledDataTask):
    """Base of the tasks that reconstruct the object an image ``[B, C, H, W]`` shows (voxels,
    occupancy, mesh): the data's arguments with the defaults of one object per image
    (``num_classes`` 1, ``in_channels`` 3) and ``export_meshes``, how many test predictions are
    written as meshes into the run directory. A subclass forwards them as ``**data``:
    ``super().__init__(optimizer, scheduler, **data)``; its ``test_step`` keeps the first test
    batch's meshes in :attr:`exported` and :meth:`save_artifacts` writes them."""

    def __init__(
        self,
        optimizer: OptimizerConfig | Mapping[str, Any] | None,
        scheduler: SchedulerConfig | Mapping[str, Any] | None,
        /,
        *,
        num_classes: int = 1,
        in_channels: int = 3,
        export_meshes: int = 8,
        **data: Any,
    ):
        super().__init__(
            optimizer, scheduler, num_classes=num_classes, in_channels=in_channels, **data
        )
        if export_meshes < 0:
            raise SpecError(f"export_meshes: must be >= 0, got {export_meshes}")
        #: file prefix -> meshes ``(verts [V, 3], faces [F, 3])`` on the CPU, from ``test_step``
        self.exported: dict[str, list[Mesh]] = {}

    def save_artifacts(self, stage: str, directory: Path) -> list[Path]:
        """After ``test``: each mesh of :attr:`exported` as ``<run>/meshes/<prefix>_<k>.obj``
        (``directory`` is the run's plots folder); an empty mesh writes no file."""
        if stage != "test":
            return []
        folder = Path(directory).parent / "meshes"
        return [
            path
            for prefix, meshes in self.exported.items()
            for path in write_meshes(folder, prefix, meshes)
        ]


@TASKS.register("image_to_voxel", batch=ImageToVoxelBatch)
class ImageToVoxelTask(ImageReconstructionTask):
    """Predict the occupancy grid ``[B, R, R, R]`` of the object an image shows; binary
    cross-entropy per cell, voxel IoU at ``threshold`` as the metric. ``export_meshes``: how
    many test predictions (with their targets) are cubified into the run directory
    (``meshes/predicted_<k>.obj``, ``meshes/target_<k>.obj``)."""

    checkpoint_monitor = ("val/iou", "max")

    def __init__(
        self,
        resolution: int = 32,
        net: str = "voxel_decoder",
        net_args: dict[str, Any] | None = None,
        threshold: float = 0.5,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, **data)
        self.save_hyperparameters()
        check_threshold(threshold)
        self.net = build_family_net(
            IMAGE_TO_VOXEL_NETS,
            net,
            net_args,
            in_channels=self.hparams.in_channels,
            resolution=resolution,
        )
        self.epoch_means = EpochMeans(["loss", "iou"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, C, H, W] -> occupancy logits [B, R, R, R]``."""
        return self.net(images)

    def occupied(self, logits: torch.Tensor) -> torch.Tensor:
        """bool ``[B, R, R, R]``: cells whose probability exceeds ``threshold``."""
        return logits.float().sigmoid() > self.hparams.threshold

    def _step(self, batch: ImageToVoxelBatch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.images)  # [B, R, R, R]
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch.voxels)
        iou = voxel_iou(self.occupied(logits.detach()), batch.voxels > 0.5)
        self.epoch_means.update(stage, {"loss": loss.expand(len(iou)), "iou": iou})
        return logits, loss

    def test_step(self, batch: ImageToVoxelBatch, batch_idx: int) -> None:
        logits, _ = self._step(batch, "test")
        if batch_idx == 0 and self.hparams.export_meshes:
            count = self.hparams.export_meshes
            self.exported = {
                "predicted": cubify(self.occupied(logits[:count]).cpu()),
                "target": cubify(batch.voxels[:count].cpu() > 0.5),
            }

    def predict_step(self, batch: ImageToVoxelBatch, batch_idx: int) -> torch.Tensor:
        """Occupancy probabilities ``[B, R, R, R]``."""
        return self(batch.images).float().sigmoid()

    def make_evaluator(self) -> VoxelEvaluator:
        return VoxelEvaluator()

    def evaluation_step(self, batch: ImageToVoxelBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted and true occupancy, bool ``[B, R, R, R]`` each, on the CPU."""
        return self.occupied(self(batch.images)).cpu(), batch.voxels.cpu() > 0.5


def check_threshold(threshold: float) -> None:
    """SpecError naming ``threshold`` unless it is an occupancy probability in (0, 1)."""
    if not 0 < threshold < 1:
        raise SpecError(f"threshold: must be in (0, 1), got {threshold}")


def write_meshes(folder: Path, prefix: str, meshes: list[Mesh]) -> list[Path]:
    """``folder/<prefix>_<k>.obj`` for each non-empty mesh ``(verts [V, 3], faces [F, 3])``."""
    return [
        write_mesh(folder / f"{prefix}_{index}.obj", verts.numpy(), faces.numpy())
        for index, (verts, faces) in enumerate(meshes)
        if len(faces)
    ]
