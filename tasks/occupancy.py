"""Implicit surfaces: predict from an image which points of space an object occupies
(Occupancy Networks), then mesh the prediction by marching cubes to score its surface.

    task = ImageToOccupancyTask(in_channels=3, mesh_resolution=32)
    trainer.fit(task, datamodule)   # ImageToOccupancyBatch(images, queries [B, Q, 3], occupancy [B, Q], ...)

Training: binary cross-entropy of the occupancy logits at the batch's query points. Logged
once per epoch: ``{train,val,test}/loss`` and ``/iou`` (occupancy IoU over the query points at
``threshold``). The ``evaluate`` stage meshes every prediction: occupancy probabilities at the
centres of a ``mesh_resolution^3`` grid over ``[-1, 1]^3``, the ``threshold`` level set by
marching cubes (:func:`visionflow.ops.mesh_from_grid`), as many surface samples as the target
has; scored by :class:`~visionflow.evaluation.occupancy.OccupancyEvaluator` (IoU, Chamfer,
F1@t). After ``test`` the first test batch's meshes go into ``<run>/meshes/occupancy_<k>.obj``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from visionflow.batches import ImageToOccupancyBatch
from visionflow.errors import SpecError
from visionflow.evaluation.occupancy import OccupancyEvaluator
from visionflow.evaluation.pointclouds import DEFAULT_THRESHOLDS
from visionflow.ops import mesh_from_grid, sample_points_from_mesh, voxel_iou
from visionflow.ops.voxelize import cell_centers
from visionflow.registry import TASKS
from visionflow.tasks.nets.families import IMAGE_TO_OCCUPANCY_NETS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.pointclouds import EpochMeans, build_family_net
from visionflow.tasks.voxels import ImageReconstructionTask, Mesh, check_threshold


@TASKS.register("image_to_occupancy", batch=ImageToOccupancyBatch)
class ImageToOccupancyTask(ImageReconstructionTask):
    """Occupancy logits of query points ``[B, Q, 3]`` given an image (see the module
    docstring); ``export_meshes``: how many test predictions are meshed into the run folder."""

    checkpoint_monitor = ("val/iou", "max")

    def __init__(
        self,
        net: str = "onet",
        net_args: dict[str, Any] | None = None,
        threshold: float = 0.5,
        mesh_resolution: int = 32,
        f_score_thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, **data)
        self.save_hyperparameters()
        check_threshold(threshold)
        if mesh_resolution < 2:
            raise SpecError(f"mesh_resolution: must be >= 2, got {mesh_resolution}")
        self.thresholds = OccupancyEvaluator(f_score_thresholds).clouds.thresholds
        self.net = build_family_net(
            IMAGE_TO_OCCUPANCY_NETS, net, net_args, in_channels=self.hparams.in_channels
        )
        self.epoch_means = EpochMeans(["loss", "iou"])

    def forward(self, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """``images [B, C, H, W]``, ``points [B, Q, 3] -> occupancy logits [B, Q]``."""
        return self.net(images, points)

    def _step(self, batch: ImageToOccupancyBatch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.images, batch.queries).float()  # [B, Q]
        loss = F.binary_cross_entropy_with_logits(logits, batch.occupancy)
        occupied = logits.detach().sigmoid() > self.hparams.threshold
        iou = voxel_iou(occupied, batch.occupancy > 0.5)
        self.epoch_means.update(stage, {"loss": loss.expand(len(iou)), "iou": iou})
        return logits, loss

    def test_step(self, batch: ImageToOccupancyBatch, batch_idx: int) -> None:
        self._step(batch, "test")
        if batch_idx == 0 and self.hparams.export_meshes:
            self.exported = {"occupancy": self.meshes(batch.images[: self.hparams.export_meshes])}

    def predict_step(self, batch: ImageToOccupancyBatch, batch_idx: int) -> torch.Tensor:
        """Occupancy probabilities ``[B, Q]`` of the batch's query points."""
        return self(batch.images, batch.queries).float().sigmoid()

    def occupancy_grids(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities ``[B, R, R, R]`` at the cell centres of the ``mesh_resolution`` grid
        (``[D, H, W]`` = z, y, x over ``[-1, 1]^3``)."""
        resolution = self.hparams.mesh_resolution
        centers = cell_centers(resolution, dtype=torch.float32).to(images.device)
        z, y, x = torch.meshgrid(centers, centers, centers, indexing="ij")
        points = torch.stack([x, y, z], -1).view(1, -1, 3)  # [1, R^3, 3]
        code = self.net.encode(images)
        logits = self.net.decode(code, points.expand(len(images), -1, -1))
        return logits.float().sigmoid().view(-1, resolution, resolution, resolution)

    @torch.no_grad()
    def meshes(self, images: torch.Tensor) -> list[Mesh]:
        """The predicted surface of each image, by marching cubes on the CPU."""
        return [
            mesh_from_grid(grid, self.hparams.threshold)
            for grid in self.occupancy_grids(images).cpu()
        ]

    def make_evaluator(self) -> OccupancyEvaluator:
        return OccupancyEvaluator(self.thresholds)

    def evaluation_step(
        self, batch: ImageToOccupancyBatch
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Predicted and true occupancy at the queries (bool ``[B, Q]``) and surfaces
        (``[P, 3]`` per sample; as many predicted samples as true ones), on the CPU."""
        occupied = self(batch.images, batch.queries).float().sigmoid() > self.hparams.threshold
        surfaces = []
        for verts, faces in self.meshes(batch.images):
            if len(faces) == 0:
                surfaces.append(torch.zeros(0, 3))
                continue
            generator = torch.Generator().manual_seed(0)
            points, _ = sample_points_from_mesh(verts, faces, batch.surface.shape[1], generator)
            surfaces.append(points)
        predictions = {"occupied": occupied.cpu(), "surfaces": surfaces}
        targets = {"occupied": batch.occupancy.cpu() > 0.5, "surfaces": list(batch.surface.cpu())}
        return predictions, targets
