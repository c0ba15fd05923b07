"""PointNet++ set abstraction and classifier."""

from __future__ import annotations

import pytest
import torch

from visionflow.batches import PointCloudBatch
from visionflow.errors import SpecError
from visionflow.tasks import PointCloudClassificationTask
from visionflow.tasks.nets.pointnet2 import SetAbstraction, pointnet2

SMALL = {"samples": [8, 4], "radii": [0.5, 1.0], "neighbours": [6, 8], "width": 4}


def test_set_abstraction_pools_each_ball_of_the_farthest_points():
    level = SetAbstraction(samples=2, radius=0.5, neighbours=3, widths=[3, 1])
    with torch.no_grad():  # the MLP passes each relative coordinate x through as relu(x)
        level.mlp[0].weight.copy_(torch.tensor([1.0, 0, 0])[None, :, None, None])
        level.mlp[0].bias.zero_()
    level.mlp[1] = torch.nn.Identity()
    xyz = torch.tensor([[[0.0, 0, 0], [0.3, 0, 0], [5, 0, 0], [5.2, 0, 0], [9, 9, 9]]])
    centroids, features, lengths = level(xyz, None, torch.tensor([4]))  # the last is padding
    torch.testing.assert_close(centroids, torch.tensor([[[0.0, 0, 0], [5.2, 0, 0]]]))
    # ball of 0: points 0, 0.3 -> max x offset 0.3; ball of 5.2: 5, 5.2 -> max relu(-0.2, 0) = 0
    torch.testing.assert_close(features, torch.tensor([[[0.3, 0.0]]]))
    assert lengths.tolist() == [2]


@pytest.mark.parametrize("in_channels", [3, 5])
def test_pointnet2_ignores_padding_and_takes_extra_channels(in_channels):
    torch.manual_seed(0)
    net = pointnet2(num_classes=4, in_channels=in_channels, **SMALL).eval()
    points = torch.randn(2, 30, in_channels)
    logits = net(points)
    assert logits.shape == (2, 4)
    padded = torch.cat([points, torch.full((2, 10, in_channels), 1e3)], dim=1)
    torch.testing.assert_close(net(padded, torch.tensor([30, 30])), logits, rtol=1e-4, atol=1e-5)


def test_pointnet2_trains_in_the_classification_task():
    torch.manual_seed(0)
    task = PointCloudClassificationTask(num_classes=2, net="pointnet2", net_args=SMALL)
    batch = PointCloudBatch(points=torch.randn(4, 20, 3), labels=torch.tensor([0, 1, 0, 1]))
    loss = task.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and task.net.levels[0].mlp[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "args", [{"samples": [8], "radii": [0.5, 1.0]}, {"width": 0}, {"radii": [0.0, 1.0]}]
)
def test_pointnet2_bad_args_name_net_args(args):
    with pytest.raises(SpecError, match="net_args"):
        pointnet2(num_classes=2, **{**SMALL, **args})
