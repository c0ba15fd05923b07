"""The voxel nets, VoxelClassificationTask, ImageToVoxelTask and the voxel IoU evaluator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visionflow.batches import ImageToVoxelBatch, VoxelBatch
from visionflow.datamodules.mesh_io import read_mesh
from visionflow.errors import DataError, SpecError
from visionflow.evaluation.voxels import VoxelEvaluator
from visionflow.ops import voxel_iou
from visionflow.tasks import (
    ImageToMeshTask,
    ImageToOccupancyTask,
    ImageToVoxelTask,
    VoxelClassificationTask,
)
from visionflow.tasks.nets.voxels import voxel_decoder, voxnet


def voxel_pair_batch(resolution=8, count=2):
    generator = torch.Generator().manual_seed(0)
    return ImageToVoxelBatch(
        images=torch.randn(count, 3, 32, 32, generator=generator),
        voxels=(torch.rand(count, *(resolution,) * 3, generator=generator) < 0.3).float(),
        labels=torch.zeros(count, dtype=torch.int64),
    )


@pytest.mark.parametrize("resolution", [11, 32])
def test_voxnet_classifies_grids(resolution):
    net = voxnet(num_classes=4, resolution=resolution, width=4, hidden=8)
    assert net(torch.zeros(2, 1, *(resolution,) * 3)).shape == (2, 4)


@pytest.mark.parametrize(
    "builder, arguments, key",
    [
        (voxnet, {"num_classes": 2, "resolution": 10}, "resolution"),
        (voxnet, {"num_classes": 2, "resolution": 32, "dropout": 1.0}, "net_args"),
        (voxel_decoder, {"in_channels": 3, "resolution": 24}, "resolution"),
        (voxel_decoder, {"in_channels": 3, "resolution": 16, "channels": 0}, "net_args"),
    ],
)
def test_voxel_nets_name_a_bad_argument(builder, arguments, key):
    with pytest.raises(SpecError, match=key):
        builder(**arguments)


@pytest.mark.parametrize("resolution", [4, 16])
def test_voxel_decoder_predicts_a_grid_of_logits(resolution):
    net = voxel_decoder(in_channels=3, resolution=resolution, width=4, depth=2, channels=8)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, resolution, resolution, resolution)


def test_voxel_classification_steps_and_evaluation():
    task = VoxelClassificationTask(num_classes=3, resolution=12, net_args={"width": 4, "hidden": 8})
    batch = VoxelBatch(
        voxels=torch.rand(4, 1, 12, 12, 12).round(), labels=torch.tensor([0, 1, 2, 1])
    )
    loss = task.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    task.eval()
    evaluator = task.make_evaluator()
    evaluator.process(*task.evaluation_step(batch))
    assert evaluator.evaluate().num_samples == 4


def test_image_to_voxel_loss_iou_and_evaluation_pairs():
    task = ImageToVoxelTask(
        resolution=8, net_args={"width": 4, "depth": 2, "channels": 8}, threshold=0.4
    ).eval()
    batch = voxel_pair_batch()
    logits, loss = task._step(batch, "val")
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, batch.voxels))
    predicted, target = task.evaluation_step(batch)
    assert predicted.dtype == target.dtype == torch.bool and predicted.shape == (2, 8, 8, 8)
    assert torch.equal(predicted, logits.sigmoid() > 0.4)
    evaluator = task.make_evaluator()
    evaluator.process(predicted, target)
    assert evaluator.evaluate().metrics["iou"] == pytest.approx(
        voxel_iou(predicted, target).mean().item()
    )


def test_image_to_voxel_exports_cubified_meshes(tmp_path):
    task = ImageToVoxelTask(
        resolution=8, net_args={"width": 4, "depth": 2, "channels": 8}, export_meshes=1
    ).eval()
    task.test_step(voxel_pair_batch(), 0)
    assert [len(task.exported[kind]) for kind in ("predicted", "target")] == [1, 1]
    written = task.save_artifacts("test", tmp_path / "plots")
    names = {path.name for path in written}
    assert "target_0.obj" in names and all(p.parent == tmp_path / "meshes" for p in written)
    verts, faces = read_mesh(tmp_path / "meshes" / "target_0.obj")
    assert len(faces) > 0 and abs(verts).max() <= 1 + 1e-6
    assert task.save_artifacts("fit", tmp_path / "plots") == []


@pytest.mark.parametrize(
    "arguments, key",
    [
        ({"threshold": 1.0}, "threshold"),
        ({"net": "voxnet"}, "net"),  # a voxel classifier, not an image -> voxel net
        ({"net_args": {"resolution": 8}}, "net_args.resolution"),
    ],
)
def test_image_to_voxel_bad_arguments_name_the_key(arguments, key):
    with pytest.raises(SpecError, match=key):
        ImageToVoxelTask(resolution=8, **arguments)


@pytest.mark.parametrize("task_type", [ImageToVoxelTask, ImageToOccupancyTask, ImageToMeshTask])
def test_every_image_reconstruction_task_refuses_a_negative_export_meshes(task_type):
    with pytest.raises(SpecError, match="export_meshes: must be >= 0, got -1"):
        task_type(export_meshes=-1)


def test_evaluator_known_values_shards_and_bad_input():
    target = torch.zeros(2, 2, 2, 2, dtype=torch.bool)
    target[:, 0] = True  # 4 cells each
    predicted = target.clone()
    predicted[1, 1, 0, 0] = True  # 4 of 5
    evaluator = VoxelEvaluator()
    evaluator.process(predicted, target)
    whole = evaluator.evaluate()
    assert whole.metrics["iou"] == pytest.approx((1 + 0.8) / 2) and whole.num_samples == 2
    evaluator.reset()
    evaluator.process(predicted[:1], target[:1])
    evaluator.process(predicted[1:], target[1:])
    assert evaluator.evaluate().metrics == whole.metrics
    with pytest.raises(DataError, match="bool"):
        evaluator.process(predicted.float(), target)
    with pytest.raises(DataError, match=r"\[B, R, R, R\]"):
        evaluator.process(predicted[:, 0], target)
