"""The occupancy network, ImageToOccupancyTask, marching cubes and the occupancy evaluator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visionflow.batches import ImageToOccupancyBatch
from visionflow.errors import DataError, SpecError
from visionflow.evaluation.occupancy import OccupancyEvaluator
from visionflow.ops import mesh_from_grid
from visionflow.ops.voxelize import cell_centers
from visionflow.tasks import ImageToOccupancyTask
from visionflow.tasks.nets.occupancy import onet

SMALL_NET = {"width": 4, "depth": 2, "hidden": 8, "blocks": 1}


def occupancy_batch(count=2, queries=64, surface=32):
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(count, queries, 3, generator=generator) * 2 - 1
    return ImageToOccupancyBatch(
        images=torch.randn(count, 3, 32, 32, generator=generator),
        queries=points,
        occupancy=(points.norm(dim=2) < 0.6).float(),
        surface=torch.nn.functional.normalize(
            torch.randn(count, surface, 3, generator=generator), dim=2
        )
        * 0.6,
        labels=torch.zeros(count, dtype=torch.int64),
    )


def sphere_grid(resolution=24, radius=0.6, center=(0.1, -0.2, 0.0)):
    c = cell_centers(resolution)
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    distance = ((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2).sqrt()
    return (radius - distance) * 5 + 0.5  # 0.5 on the sphere, larger inside


def test_marching_cubes_finds_the_sphere_in_the_grid_frame():
    verts, faces = mesh_from_grid(sphere_grid())
    radius = (verts - torch.tensor([0.1, -0.2, 0.0])).norm(dim=1)
    assert radius.min() > 0.58 and radius.max() < 0.62
    corners = verts[faces]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    outward = corners.mean(1) - torch.tensor([0.1, -0.2, 0.0])
    assert (torch.einsum("fd,fd->f", normals, outward) > 0).all()
    empty_verts, empty_faces = mesh_from_grid(torch.zeros(4, 4, 4))
    assert empty_verts.shape == empty_faces.shape == (0, 3)


def test_a_surface_touching_the_border_is_closed():
    verts, faces = mesh_from_grid(torch.ones(3, 3, 3))  # all occupied: the cube of centres
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert sorted(map(tuple, edges.tolist())) == sorted(map(tuple, edges.flip(1).tolist()))


def test_onet_decodes_a_logit_per_point_and_names_bad_arguments():
    net = onet(in_channels=3, **SMALL_NET)
    assert net(torch.randn(2, 3, 32, 32), torch.rand(2, 10, 3)).shape == (2, 10)
    with pytest.raises(SpecError, match="net_args"):
        onet(in_channels=3, blocks=0)


def test_task_loss_iou_and_evaluation_pairs():
    task = ImageToOccupancyTask(net_args=SMALL_NET, mesh_resolution=8).eval()
    batch = occupancy_batch()
    logits, loss = task._step(batch, "val")
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, batch.occupancy))
    predictions, targets = task.evaluation_step(batch)
    assert predictions["occupied"].shape == targets["occupied"].shape == (2, 64)
    for surface in predictions["surfaces"]:
        assert surface.shape in ((0, 3), (32, 3))
    evaluator = task.make_evaluator()
    evaluator.process(predictions, targets)
    assert evaluator.evaluate().num_samples == 2


def test_the_meshed_prediction_is_the_level_set_of_the_net(monkeypatch, tmp_path):
    task = ImageToOccupancyTask(net_args=SMALL_NET, mesh_resolution=24, export_meshes=1).eval()
    grid = sphere_grid()
    monkeypatch.setattr(
        task, "occupancy_grids", lambda images: grid.float()[None].expand(len(images), -1, -1, -1)
    )
    verts, faces = task.meshes(torch.zeros(1, 3, 32, 32))[0]
    assert torch.equal(faces, mesh_from_grid(grid.float())[1])
    task.test_step(occupancy_batch(count=1), 0)
    (path,) = task.save_artifacts("test", tmp_path / "plots")
    assert path == tmp_path / "meshes" / "occupancy_0.obj" and path.stat().st_size > 0


def test_occupancy_grid_samples_the_net_at_cell_centres():
    task = ImageToOccupancyTask(net_args=SMALL_NET, mesh_resolution=4).eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        grid = task.occupancy_grids(images)
        point = torch.tensor([[[-0.75, 0.25, 0.75]]])  # x by w=0, y by h=2, z by d=3
        expected = task(images, point).sigmoid()[0, 0]
    torch.testing.assert_close(grid[0, 3, 2, 0], expected)


@pytest.mark.parametrize(
    "arguments, key",
    [
        ({"threshold": 0.0}, "threshold"),
        ({"mesh_resolution": 1}, "mesh_resolution"),
        ({"net": "psgn"}, "net"),
        ({"net_args": {"hiden": 8}}, "net_args.hiden"),
    ],
)
def test_bad_arguments_name_the_key(arguments, key):
    with pytest.raises(SpecError, match=key):
        ImageToOccupancyTask(**arguments)


def test_evaluator_known_values_empty_meshes_and_shards():
    target_surface = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    truth = torch.tensor([[True, True, False, False], [True, False, False, False]])
    occupied = torch.tensor([[True, False, False, False], [True, False, False, False]])
    predictions = {"occupied": occupied, "surfaces": [target_surface.clone(), torch.zeros(0, 3)]}
    targets = {"occupied": truth, "surfaces": [target_surface, target_surface]}
    evaluator = OccupancyEvaluator(thresholds=(0.1,))
    evaluator.process(predictions, targets)
    whole = evaluator.evaluate()
    assert whole.metrics["iou"] == pytest.approx((0.5 + 1.0) / 2)
    assert whole.metrics["chamfer"] == 0.0  # the empty mesh has none
    assert whole.metrics["f1@0.1"] == pytest.approx(0.5) and whole.metrics["meshed"] == 0.5
    evaluator.reset()
    for index in range(2):
        evaluator.process(
            {
                "occupied": occupied[index : index + 1],
                "surfaces": predictions["surfaces"][index : index + 1],
            },
            {
                "occupied": truth[index : index + 1],
                "surfaces": targets["surfaces"][index : index + 1],
            },
        )
    assert evaluator.evaluate().metrics == whole.metrics
    with pytest.raises(DataError, match=r"\[B, Q\]"):
        evaluator.process(
            {"occupied": occupied[0], "surfaces": []}, {"occupied": truth[0], "surfaces": []}
        )
