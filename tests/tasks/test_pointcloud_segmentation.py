"""Point-cloud segmentation: feature propagation, ragged exactness, the task on tiny data."""

from __future__ import annotations

import lightning
import pytest
import torch

from tests.datamodules.test_shapes3d_parts import tiny_parts
from visionflow.batches import IGNORE_INDEX, PointCloudSegmentationBatch
from visionflow.errors import SpecError, UnknownNameError
from visionflow.tasks import PointCloudSegmentationTask
from visionflow.tasks.nets.pointnet_seg import interpolate_features, pointnet2_seg, pointnet_seg

TINY_NETS = {
    "pointnet_seg": {"width": 4, "feature_dim": 8, "tnet": True},
    "pointnet2_seg": {"samples": [12, 4], "radii": [0.5, 1.0], "neighbours": [6, 6], "width": 4},
}


def test_interpolation_weights_the_three_nearest_by_inverse_squared_distance():
    known = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [9, 9, 9]]])
    features = torch.tensor([[[1.0, 2, 3, 4, 100]]])  # [1, 1, 5]; the last point is padding
    queries = torch.tensor([[[0.5, 0, 0], [5, 5, 5], [8, 8, 8]]])
    result = interpolate_features(queries, known, features, torch.tensor([4]))
    # (0.5, 0, 0): squared distances 0.25, 0.25, 1.25 -> weights 4, 4, 0.8
    first = (4 * 1 + 4 * 2 + 0.8 * 3) / 8.8
    # (8, 8, 8): 27 to (5, 5, 5), 49 + 64 + 64 = 177 to (1, 0, 0) and to (0, 1, 0), 192 to
    # the origin (the padded point, 3 away, is never a neighbour)
    last = (4 / 27 + 2 / 177 + 3 / 177) / (1 / 27 + 2 / 177)
    torch.testing.assert_close(result, torch.tensor([[[first, 4.0, last]]]))


def test_interpolation_with_fewer_valid_points_than_neighbours():
    known = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [7, 7, 7]]])
    features = torch.tensor([[[1.0, 3, 50]]])
    result = interpolate_features(torch.tensor([[[0.5, 0, 0]]]), known, features, torch.tensor([2]))
    weights = torch.tensor([1 / 0.25, 1 / 2.25])
    torch.testing.assert_close(
        result[0, 0, 0], (weights * torch.tensor([1.0, 3])).sum() / weights.sum()
    )


@pytest.mark.parametrize("net", sorted(TINY_NETS))
def test_padding_never_reaches_the_valid_points(net):
    torch.manual_seed(0)
    build = {"pointnet_seg": pointnet_seg, "pointnet2_seg": pointnet2_seg}[net]
    model = build(num_classes=5, **TINY_NETS[net]).eval()
    points = torch.rand(3, 40, 3) * 2 - 1
    lengths = torch.tensor([40, 23, 31])
    logits = model(points, lengths)
    assert logits.shape == (3, 40, 5)
    garbage = points.clone()
    for cloud, count in enumerate(lengths.tolist()):
        garbage[cloud, count:] = 1e3 * torch.randn(40 - count, 3)
        alone = model(points[cloud : cloud + 1, :count])  # the cloud without any padding
        assert torch.equal(model(garbage, lengths)[cloud, :count], logits[cloud, :count])
        torch.testing.assert_close(alone[0], logits[cloud, :count], rtol=1e-5, atol=1e-6)


def tiny_task(**args) -> PointCloudSegmentationTask:
    return PointCloudSegmentationTask(
        num_classes=4, net_args=TINY_NETS["pointnet_seg"], scheduler="none", **args
    )


def test_loss_counts_only_valid_labelled_points():
    torch.manual_seed(0)
    task = tiny_task().eval()
    points = torch.randn(2, 10, 3)
    labels = torch.randint(0, 4, (2, 10))
    labels[0, 2] = IGNORE_INDEX
    batch = PointCloudSegmentationBatch(points, labels, lengths=torch.tensor([10, 6]))
    logits, loss = task._step(batch, "val")
    counted = torch.ones(2, 10, dtype=torch.bool)
    counted[0, 2] = False
    counted[1, 6:] = False
    expected = torch.nn.functional.cross_entropy(logits[counted], labels[counted])
    torch.testing.assert_close(loss, expected)
    assert int(task.confusion.sum()) == int(counted.sum())


def test_bad_arguments_name_the_key():
    with pytest.raises(SpecError, match="ignore_index"):
        tiny_task(ignore_index=2)
    with pytest.raises(SpecError, match="net_args.depth"):
        PointCloudSegmentationTask(num_classes=4, net_args={"depth": 2})
    with pytest.raises(UnknownNameError):
        PointCloudSegmentationTask(num_classes=4, net="pointnet")  # a classifier


@pytest.fixture(scope="module")
def parts_data(tmp_path_factory):
    """16 training clouds of 64 points, not augmented, so that a tiny net fits them."""
    return tiny_parts(
        tmp_path_factory.mktemp("parts"),
        train_samples=16,
        val_samples=4,
        test_samples=4,
        num_points=64,
        batch_size=8,
        transforms={"train": "pointcloud_none"},
    )


def accuracy_on(task, loader) -> float:
    """Point accuracy of ``task`` (in eval mode, then left in training mode) over ``loader``,
    through its evaluation contract."""
    evaluator = task.make_evaluator()
    with torch.no_grad():
        for batch in loader:
            evaluator.process(*task.eval().evaluation_step(batch))
    task.train()
    return evaluator.evaluate().metrics["pixel_acc"]


def test_task_fits_tiny_data_and_scores_like_its_evaluator(parts_data, tmp_path, one_torch_thread):
    torch.manual_seed(0)
    task = PointCloudSegmentationTask(
        num_classes=10,
        net_args={"width": 8, "feature_dim": 32},
        optimizer={"name": "adam", "lr": 0.01},
        scheduler="none",
        class_names=list(parts_data.info.class_names),
    )
    parts_data.setup("fit")
    training_clouds = parts_data._dataloader("train", shuffle=False)
    untrained = accuracy_on(task, training_clouds)
    trainer = lightning.Trainer(
        max_epochs=30,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, parts_data)
    assert {"train/loss", "val/loss", "val/mIoU", "val/acc"} <= set(trainer.callback_metrics)
    fitted = accuracy_on(task, training_clouds)
    assert fitted > 0.55 and fitted > untrained + 0.4, (untrained, fitted)
    tested = trainer.test(task, parts_data, verbose=False)[0]
    evaluator = task.make_evaluator()
    for batch in parts_data.test_dataloader():
        evaluator.process(*task.eval().evaluation_step(batch))
    evaluation = evaluator.evaluate()
    assert evaluation.num_samples == 4
    assert tested["test/mIoU"] == pytest.approx(evaluation.metrics["mIoU"])
    assert tested["test/acc"] == pytest.approx(evaluation.metrics["pixel_acc"])
    written = task.save_artifacts("test", tmp_path / "plots")
    names = sorted(path.name for path in written)
    assert "part_segmentation.png" in names and "pred_3.ply" in names and "true_0.ply" in names
