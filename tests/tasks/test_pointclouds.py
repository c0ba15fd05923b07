"""PointNet, the point-cloud tasks and the Chamfer / F-score evaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionflow.batches import ImageToPointCloudBatch, PointCloudBatch
from visionflow.errors import DataError, SpecError
from visionflow.evaluation import PointCloudEvaluator
from visionflow.ops import chamfer_distance
from visionflow.tasks import ImageToPointCloudTask, PointCloudClassificationTask
from visionflow.tasks.nets.pointnet import pointnet, psgn


@pytest.mark.parametrize("tnet", [False, True])
def test_pointnet_ignores_point_order_and_padding(tnet):
    torch.manual_seed(0)
    net = pointnet(num_classes=4, width=8, feature_dim=16, tnet=tnet).eval()
    points = torch.randn(2, 30, 3)
    logits = net(points)
    assert logits.shape == (2, 4)
    torch.testing.assert_close(net(points[:, torch.randperm(30)]), logits, rtol=1e-4, atol=1e-5)
    padded = torch.cat([points, torch.full((2, 10, 3), 1e3)], dim=1)
    torch.testing.assert_close(net(padded, torch.tensor([30, 30])), logits, rtol=1e-4, atol=1e-5)


def test_psgn_predicts_bounded_points():
    points = psgn(in_channels=3, num_points=50, width=4, depth=2, scale=0.5)(
        torch.randn(2, 3, 32, 32)
    )
    assert points.shape == (2, 50, 3) and points.abs().max() <= 0.5


def test_classification_task_steps_and_evaluation_pairs():
    task = PointCloudClassificationTask(num_classes=3, net_args={"width": 4, "feature_dim": 8})
    batch = PointCloudBatch(points=torch.randn(4, 20, 3), labels=torch.tensor([0, 1, 2, 1]))
    loss = task.training_step(batch, 0)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    task.eval()
    predictions, targets = task.evaluation_step(batch)
    evaluator = task.make_evaluator()
    evaluator.process(predictions, targets)
    assert evaluator.evaluate().num_samples == 4


def test_image_to_pointcloud_task_loss_is_the_chamfer_distance():
    task = ImageToPointCloudTask(
        in_channels=3, num_points=16, net_args={"width": 4, "depth": 2}
    ).eval()
    batch = ImageToPointCloudBatch(
        images=torch.randn(2, 3, 32, 32), points=torch.rand(2, 25, 3), labels=torch.tensor([0, 1])
    )
    predicted, loss = task._step(batch, "val")
    torch.testing.assert_close(loss, chamfer_distance(predicted, batch.points)[0])
    predictions, targets = task.evaluation_step(batch)
    assert [p.shape for p in predictions] == [(16, 3)] * 2 and targets[0].shape == (25, 3)


@pytest.mark.parametrize(
    "arguments, key",
    [
        ({"net": "pointnet"}, "net"),  # a point-cloud net, not psgn
        ({"net_args": {"widht": 4}}, "net_args.widht"),
        ({"net_args": {"num_points": 4}}, "net_args.num_points"),
        ({"num_points": 0}, "num_points"),
        ({"f_score_thresholds": [0.0]}, "thresholds"),
    ],
)
def test_image_to_pointcloud_bad_arguments_name_the_key(arguments, key):
    with pytest.raises((SpecError, ValueError), match=key):
        ImageToPointCloudTask(in_channels=3, **arguments)


def test_evaluator_known_values_and_shards_agree():
    target = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    exact, near = target.clone(), target + torch.tensor([0.2, 0, 0])
    evaluator = PointCloudEvaluator(thresholds=(0.1, 0.3))
    evaluator.process([exact, near], [target, target])
    whole = evaluator.evaluate()
    # near: x->y distances 0.04 and 0.64 (point 1.2 is 0.2 from 1.0; 0.2 is 0.2 from 0.0), etc.
    assert whole.metrics["chamfer"] == pytest.approx((0.0 + 2 * 0.04) / 2)
    assert whole.metrics["f1@0.1"] == pytest.approx(0.5)  # exact: 1, near: 0
    assert whole.metrics["f1@0.3"] == pytest.approx(1.0)
    evaluator.reset()
    evaluator.process([exact], [target])
    evaluator.process([near], [target])
    assert evaluator.evaluate().metrics == whole.metrics


def test_evaluator_refuses_bad_clouds():
    evaluator = PointCloudEvaluator()
    with pytest.raises(DataError, match="NaN"):
        evaluator.process([torch.tensor([[float("nan"), 0, 0]])], [torch.zeros(1, 3)])
    with pytest.raises(DataError, match=r"\[N, 3\]"):
        evaluator.process([torch.zeros(0, 3)], [torch.zeros(1, 3)])


def test_image_to_pointcloud_exports_its_predictions_as_ply(tmp_path):
    import open3d as o3d

    task = ImageToPointCloudTask(
        in_channels=3, num_points=16, export_clouds=1, net_args={"width": 4, "depth": 2}
    ).eval()
    batch = ImageToPointCloudBatch(
        images=torch.randn(2, 3, 32, 32), points=torch.rand(2, 25, 3), labels=torch.tensor([0, 1])
    )
    task.test_step(batch, 0)
    written = task.save_artifacts("test", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "pointclouds.png",
        "pointclouds/pred_0.ply",
    ]
    cloud = torch.tensor(np.asarray(o3d.io.read_point_cloud(str(written[1])).points)).float()
    torch.testing.assert_close(cloud, task.last_predictions[0][0])
