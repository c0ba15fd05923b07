"""Image -> mesh (Pixel2Mesh): deform an ico-sphere into the object an image shows.

    task = ImageToMeshTask(in_channels=3, num_points=1024)
    trainer.fit(task, datamodule)   # ImageToPointCloudBatch(images [B, C, H, W], points [B, M, 3])

Loss, summed over the net's deformation stages: the Chamfer distance between ``num_points``
samples of the predicted surface (:func:`visionflow.ops.sample_points_from_meshes`) and the
target cloud, plus ``normal_weight`` x the normal term of Pixel2Mesh: ``1 - |cos|`` between
the normal of each predicted sample and the TARGET normal at its nearest target point, and
back (``chamfer_distance(x_normals=, y_normals=)``; the batch's ``normals``), plus the
regularizers ``edge_weight`` x edge length, ``laplacian_weight`` x uniform Laplacian and
``consistency_weight`` x normal consistency of the predicted mesh (PyTorch3D's, between
adjacent faces; no target involved). Logged once per epoch: ``{train,val,test}/loss``, ``/chamfer`` (last
stage) and ``val/f1@t``, ``test/f1@t``. The evaluation contract scores the final surfaces'
samples with the point-cloud evaluator (Chamfer, F1@t); after ``test``, the first test batch's
meshes go into ``<run>/meshes/mesh_<k>.obj``.
"""

from __future__ import annotations

from typing import Any

import torch

from visionflow.batches import ImageToPointCloudBatch
from visionflow.errors import SpecError
from visionflow.evaluation.pointclouds import DEFAULT_THRESHOLDS, PointCloudEvaluator
from visionflow.ops import (
    chamfer_distance,
    f_score,
    mesh_edge_loss,
    mesh_laplacian_smoothing,
    mesh_normal_consistency,
    sample_points_from_meshes,
)
from visionflow.registry import TASKS
from visionflow.tasks.nets.families import IMAGE_TO_MESH_NETS
from visionflow.tasks.nets.mesh import FACE_PAIR_BUFFERS
from visionflow.tasks.optim import OptimizerConfig, SchedulerConfig
from visionflow.tasks.pointclouds import (
    EpochMeans,
    build_family_net,
    target_clouds,
)
from visionflow.tasks.voxels import ImageReconstructionTask


@TASKS.register("image_to_mesh", batch=ImageToPointCloudBatch)
class ImageToMeshTask(ImageReconstructionTask):
    """Predict a mesh ``(verts [B, V, 3], faces [F, 3])`` of the object an image shows (see
    the module docstring); the weights are those of the terms of the loss."""

    def __init__(
        self,
        num_points: int = 1024,
        net: str = "pixel2mesh",
        net_args: dict[str, Any] | None = None,
        edge_weight: float = 0.1,
        laplacian_weight: float = 0.1,
        normal_weight: float = 0.01,
        consistency_weight: float = 0.01,
        f_score_thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
        optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3),
        scheduler: SchedulerConfig = SchedulerConfig(),
        **data: Any,
    ):
        super().__init__(optimizer, scheduler, **data)
        self.save_hyperparameters()
        weights = {"edge_weight": edge_weight, "laplacian_weight": laplacian_weight}
        weights.update(normal_weight=normal_weight, consistency_weight=consistency_weight)
        for key, value in weights.items():
            if value < 0:
                raise SpecError(f"{key}: must be >= 0, got {value}")
        if num_points < 1:
            raise SpecError(f"num_points: must be >= 1, got {num_points}")
        self.thresholds = PointCloudEvaluator(f_score_thresholds).thresholds
        self.net = build_family_net(
            IMAGE_TO_MESH_NETS, net, net_args, in_channels=self.hparams.in_channels
        )
        self.epoch_means = EpochMeans(["loss", "chamfer", f"f1@{self.thresholds[0]:g}"])

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``images [B, C, H, W] ->`` verts ``[B, V, 3]`` after each stage (faces:
        ``self.net.faces``)."""
        return self.net(images)

    def surface_samples(
        self, verts: torch.Tensor, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(points, normals)``, ``[B, num_points, 3]`` each: area-weighted samples of each
        mesh ``verts [B, V, 3]`` and the unit normals of the faces they lie on."""
        generator = (
            torch.Generator(device=verts.device).manual_seed(seed) if seed is not None else None
        )
        return sample_points_from_meshes(verts, self.net.faces, self.hparams.num_points, generator)

    def _step(self, batch: ImageToPointCloudBatch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        loss = torch.zeros((), device=batch.images.device)
        net, weights = self.net, self.hparams
        faces, edges = net.faces, net.edges
        pairs = tuple(getattr(net, name) for name in FACE_PAIR_BUFFERS)
        target_normals = self.target_normals(batch)
        for verts in self(batch.images):
            verts = verts.float()
            samples, normals = self.surface_samples(verts)
            chamfer, normal_term = chamfer_distance(
                samples,
                batch.points,
                y_lengths=batch.lengths,
                x_normals=normals if target_normals is not None else None,
                y_normals=target_normals,
            )
            loss = loss + chamfer + weights.edge_weight * mesh_edge_loss(verts, faces, edges=edges)
            loss = loss + weights.laplacian_weight * mesh_laplacian_smoothing(verts, faces, edges)
            loss = loss + weights.consistency_weight * mesh_normal_consistency(verts, faces, pairs)
            if normal_term is not None:
                loss = loss + weights.normal_weight * normal_term
        values = {"loss": loss.expand(len(verts)), "chamfer": chamfer.detach().expand(len(verts))}
        if stage != "train":
            f1 = f_score(samples, batch.points, self.thresholds[:1], target_lengths=batch.lengths)
            values[f"f1@{self.thresholds[0]:g}"] = f1["f1"][:, 0]
        self.epoch_means.update(stage, values)
        return verts, loss

    def target_normals(self, batch: ImageToPointCloudBatch) -> torch.Tensor | None:
        """The batch's target normals ``[B, M, 3]`` where the normal term is weighted (None
        where ``normal_weight`` is 0); a SpecError when it is weighted and the batch has none."""
        if self.hparams.normal_weight == 0:
            return None
        if batch.normals is None:
            raise SpecError(
                "normal_weight: the batches carry no target normals for the normal term",
                hint="set normal_weight: 0, or use a datamodule whose views carry normals "
                "(shapes3d_views, shapenet_views, pix3d_views)",
            )
        return batch.normals.float()

    def test_step(self, batch: ImageToPointCloudBatch, batch_idx: int) -> None:
        verts, _ = self._step(batch, "test")
        if batch_idx == 0:
            faces = self.net.faces.cpu()
            count = self.hparams.export_meshes
            self.exported = {"mesh": [(v.detach().cpu(), faces) for v in verts[:count]]}

    def predict_step(self, batch: ImageToPointCloudBatch, batch_idx: int) -> torch.Tensor:
        """The final verts ``[B, V, 3]`` (faces: ``self.net.faces``)."""
        return self(batch.images)[-1]

    def make_evaluator(self) -> PointCloudEvaluator:
        return PointCloudEvaluator(self.thresholds)

    def evaluation_step(
        self, batch: ImageToPointCloudBatch
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Samples of each predicted surface ``[num_points, 3]`` (seed 0) and the target cloud
        ``[M_i, 3]``, on the CPU."""
        predicted = self.surface_samples(self(batch.images)[-1].float(), seed=0)[0].cpu()
        return list(predicted), target_clouds(batch)
