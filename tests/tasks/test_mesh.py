"""GraphConv, the Pixel2Mesh net and ImageToMeshTask."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from visionflow.batches import ImageToPointCloudBatch
from visionflow.datamodules.mesh_io import read_mesh
from visionflow.errors import SpecError
from visionflow.ops import (
    chamfer_distance,
    ico_sphere,
    mesh_edge_loss,
    mesh_laplacian_smoothing,
    mesh_normal_consistency,
)
from visionflow.ops.mesh_edges import unique_edges
from visionflow.tasks import ImageToMeshTask
from visionflow.tasks.nets.mesh import GraphConv, pixel2mesh

SMALL_NET = {"level": 1, "width": 4, "depth": 2, "hidden": 8, "blocks": 1, "stages": 2}


def mesh_batch(count=2, points=40):
    """Targets on the unit sphere, with its outward normals."""
    generator = torch.Generator().manual_seed(0)
    on_sphere = torch.nn.functional.normalize(
        torch.randn(count, points, 3, generator=generator), dim=2
    )
    return ImageToPointCloudBatch(
        images=torch.randn(count, 3, 32, 32, generator=generator),
        points=on_sphere,
        normals=on_sphere,
        labels=torch.zeros(count, dtype=torch.int64),
    )


def test_graph_conv_averages_the_neighbours():
    _, faces = ico_sphere(0)
    edges = torch.cat([unique_edges(faces), torch.tensor([[12, 13]])])  # plus a lone edge
    conv = GraphConv(4, 5).double()
    features = torch.randn(2, 15, 4, dtype=torch.float64)  # vertex 14: no neighbour
    expected = conv.own(features).clone()
    for vertex in range(15):
        near = [b for a, b in edges.tolist() if a == vertex] + [
            a for a, b in edges.tolist() if b == vertex
        ]
        if near:
            expected[:, vertex] += sum(conv.neighbours(features[:, j]) for j in near) / len(near)
    torch.testing.assert_close(conv(features, edges), expected)


def test_pixel2mesh_deforms_the_template_per_stage():
    net = pixel2mesh(in_channels=3, **SMALL_NET)
    stages = net(torch.randn(2, 3, 32, 32))
    assert len(stages) == 2 and all(v.shape == (2, 42, 3) for v in stages)
    assert net.faces.shape == (80, 3)
    torch.testing.assert_close(stages[0], net.template.expand(2, -1, -1))  # starts at the sphere
    with pytest.raises(SpecError, match="net_args"):
        pixel2mesh(in_channels=3, level=9)


def test_loss_is_chamfer_plus_the_weighted_regularizers_of_every_stage():
    weights = {"edge_weight": 0.3, "laplacian_weight": 0.2, "consistency_weight": 0.1}
    task = ImageToMeshTask(num_points=50, net_args=SMALL_NET, normal_weight=0, **weights).eval()
    bare = ImageToMeshTask(
        num_points=50, net_args=SMALL_NET, normal_weight=0, **dict.fromkeys(weights, 0)
    ).eval()
    bare.load_state_dict(task.state_dict())
    batch = mesh_batch()
    torch.manual_seed(0)
    _, loss = task._step(batch, "val")
    torch.manual_seed(0)
    _, chamfer_only = bare._step(batch, "val")
    faces = task.net.faces
    expected = chamfer_only + sum(
        0.3 * mesh_edge_loss(v, faces)
        + 0.2 * mesh_laplacian_smoothing(v, faces)
        + 0.1 * mesh_normal_consistency(v, faces)
        for v in task(batch.images)
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()


def test_normal_term_compares_the_samples_normals_with_the_targets_normals():
    """Pixel2Mesh's normal loss: 1 - |cos| between each predicted sample's normal and the
    target normal at its nearest target point (and back), weighted by normal_weight."""
    regularizers = {"edge_weight": 0, "laplacian_weight": 0, "consistency_weight": 0}
    task = ImageToMeshTask(num_points=50, net_args=SMALL_NET, normal_weight=0.5, **regularizers)
    task.eval()
    bare = ImageToMeshTask(num_points=50, net_args=SMALL_NET, normal_weight=0, **regularizers)
    bare.eval().load_state_dict(task.state_dict())
    batch = mesh_batch()
    losses = []
    for model in (task, bare):
        torch.manual_seed(0)
        losses.append(model._step(batch, "val")[1].detach())
    stages = task(batch.images)
    torch.manual_seed(0)
    expected = 0.0
    for verts in stages:
        samples, normals = task.surface_samples(verts)
        _, normal_term = chamfer_distance(
            samples, batch.points, x_normals=normals, y_normals=batch.normals
        )
        expected = expected + 0.5 * normal_term.detach()
    torch.testing.assert_close(losses[0] - losses[1], expected)
    # the template is the unit sphere: its normals agree with the sphere's, not with tangents
    up = torch.tensor([0.0, 0.0, 1.0]).expand_as(batch.points)
    tangents = torch.nn.functional.normalize(torch.linalg.cross(batch.points, up), dim=2)
    torch.manual_seed(0)
    crossed = task._step(replace(batch, normals=tangents), "val")[1].detach()
    assert (crossed - losses[1]).item() > 5 * (losses[0] - losses[1]).item()


def test_normal_term_needs_target_normals():
    task = ImageToMeshTask(num_points=20, net_args=SMALL_NET).eval()
    with pytest.raises(SpecError, match="normal_weight: the batches carry no target normals"):
        task._step(replace(mesh_batch(), normals=None), "val")
    ImageToMeshTask(num_points=20, net_args=SMALL_NET, normal_weight=0)._step(
        replace(mesh_batch(), normals=None), "val"
    )


def test_the_surface_needs_a_sample():
    with pytest.raises(SpecError, match="num_points: must be >= 1, got 0"):
        ImageToMeshTask(num_points=0)


def test_evaluation_pairs_and_exported_meshes(tmp_path):
    task = ImageToMeshTask(num_points=30, net_args=SMALL_NET, export_meshes=1).eval()
    batch = mesh_batch()
    predicted, targets = task.evaluation_step(batch)
    assert [p.shape for p in predicted] == [(30, 3)] * 2 and targets[0].shape == (40, 3)
    evaluator = task.make_evaluator()
    evaluator.process(predicted, targets)
    assert evaluator.evaluate().num_samples == 2
    task.test_step(batch, 0)
    (path,) = task.save_artifacts("test", tmp_path / "plots")
    verts, faces = read_mesh(path)
    assert verts.shape == (42, 3) and faces.shape == (80, 3)


@pytest.mark.parametrize(
    "arguments, key",
    [
        ({"edge_weight": -1.0}, "edge_weight"),
        ({"net": "psgn"}, "net"),
        ({"net_args": {"levle": 1}}, "net_args.levle"),
    ],
)
def test_bad_arguments_name_the_key(arguments, key):
    with pytest.raises(SpecError, match=key):
        ImageToMeshTask(**arguments)
