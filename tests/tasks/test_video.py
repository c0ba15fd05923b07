"""Video nets (shapes, I3D inflation on a static clip, non-local identity), the video and
two-stream tasks, and the clip/video accuracy evaluator."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from visionflow.batches import VideoBatch
from visionflow.errors import DataError, SpecError, UnknownNameError
from visionflow.evaluation import Evaluation, VideoAccuracyEvaluator
from visionflow.tasks import TwoStreamTask, VideoClassificationTask, confusion_plots
from visionflow.tasks.nets.families import CLASSIFICATION_NETS, VIDEO_NETS
from visionflow.tasks.nets.inflate import inflate
from visionflow.tasks.nets.video3d import NonLocalBlock

SMALL = {
    "single_frame": {"width": 4},
    "late_fusion": {"width": 4},
    "early_fusion": {"width": 4},
    "cnn_lstm": {"width": 4, "hidden": 8},
    "slow_fusion": {"width": 4},
    "c3d": {"width": 4, "non_local": True},
    "r3d_18": {"width": 8, "blocks": 1},
    "mc3_18": {"width": 8, "blocks": 1},
    "r2plus1d_18": {"width": 8, "blocks": 1},
    "i3d_resnet": {"non_local": True},
    "slowfast": {"width": 8},
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "i3d_resnet" else n
        for n in VIDEO_NETS.names()
    ],
)
def test_every_video_net_maps_clips_to_logits_and_learns(name):
    torch.manual_seed(0)
    net = VIDEO_NETS.get(name).builder(num_classes=3, in_channels=3, clip_length=4, **SMALL[name])
    clips = torch.randn(2, 3, 4, 16, 16)
    logits = net(clips)
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.slow
def test_r3d_18_at_full_width_is_torchvisions_network():
    from torchvision.models.video import r3d_18

    ours = VIDEO_NETS.get("r3d_18").builder(num_classes=400, in_channels=3, clip_length=16)
    theirs = r3d_18()
    assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]


def test_inflation_preserves_a_2d_networks_output_on_a_static_clip():
    torch.manual_seed(0)
    net2d = CLASSIFICATION_NETS.get("resnet18").builder(
        num_classes=5, in_channels=3, image_size=None, small_input=True
    )
    for module in net2d.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net2d.eval()
    image = torch.randn(1, 3, 12, 12)
    expected = net2d(image)
    net3d = inflate(net2d, time_kernel=3).eval()
    static = image[:, :, None].expand(-1, -1, 3, -1, -1)  # [B, C, T, H, W]
    torch.testing.assert_close(net3d(static), expected, rtol=1e-4, atol=1e-4)
    moving = torch.roll(static, shifts=1, dims=3) * torch.linspace(0, 1, 3)[:, None, None]
    assert not torch.allclose(net3d(moving), expected, atol=1e-3)


def test_a_new_non_local_block_is_the_identity():
    x = torch.randn(2, 8, 3, 4, 4)
    torch.testing.assert_close(NonLocalBlock(8)(x), x)


def _batch(flows: bool = True, batch: int = 4) -> VideoBatch:
    return VideoBatch(
        clips=torch.randn(batch, 3, 4, 16, 16),
        targets=torch.arange(batch) // 2 % 3,
        video_index=torch.arange(batch) // 2,
        flows=torch.randn(batch, 4, 16, 16) if flows else None,
    )


def test_video_task_steps_and_evaluation_contract():
    task = VideoClassificationTask(
        num_classes=3, clip_length=4, net="single_frame", net_args={"width": 4}
    )
    loss, scores = task.loss_and_scores(_batch())
    assert loss.ndim == 0 and scores.shape == (4, 3)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(4))
    predictions, targets = task.evaluation_step(_batch())
    evaluator = task.make_evaluator()
    evaluator.process(predictions, targets)
    assert evaluator.evaluate().num_samples == 4


def _levels_batch() -> tuple[VideoBatch, torch.Tensor]:
    """A batch of uint8 levels as the loaders deliver it, and its clips normalized by hand."""
    batch = _batch()
    levels = torch.randint(0, 256, batch.clips.shape, dtype=torch.uint8)
    mean, std = torch.tensor([110.0, 100.0, 96.0]), torch.tensor([58.0, 56.5, 55.3])
    batch.clips, batch.normalization = levels, torch.stack([mean, 1 / std])
    expected = (levels.float() - mean.view(3, 1, 1, 1)) / std.view(3, 1, 1, 1)
    return batch, expected


@pytest.mark.parametrize("task_name", ["video_classification", "two_stream"])
def test_video_tasks_normalize_uint8_clips_on_the_device(task_name):
    """Every step (Lightning's, and the evaluate stage's evaluation_step) scores a batch of
    uint8 levels as the same batch normalized by hand."""
    if task_name == "two_stream":
        task = TwoStreamTask(num_classes=3, clip_length=4, flow_frames=2, rgb_net_args={"width": 4})
    else:
        task = VideoClassificationTask(
            num_classes=3, clip_length=4, net="single_frame", net_args={"width": 4}
        )
    task.eval()
    levels, expected = _levels_batch()
    normalized = dataclasses.replace(levels, clips=expected, normalization=None)
    torch.testing.assert_close(task.predict_step(levels, 0), task.predict_step(normalized, 0))
    torch.testing.assert_close(
        task.evaluation_step(levels)[0]["scores"], task.evaluation_step(normalized)[0]["scores"]
    )
    assert levels.normalized().normalization is None
    torch.testing.assert_close(levels.normalized().clips, expected)


@pytest.mark.parametrize(
    "fusion, streams, parts",
    [("average", "both", 2), ("learned", "both", 3), ("average", "rgb", 1), ("average", "flow", 1)],
)
def test_two_stream_fuses_or_trains_one_stream(fusion, streams, parts):
    task = TwoStreamTask(
        num_classes=3,
        flow_frames=2,
        clip_length=4,
        fusion=fusion,
        streams=streams,
        rgb_net_args={"width": 4},
    )
    batch = _batch(flows=streams != "rgb")
    logits = task(batch.clips, batch.flows)
    assert len(logits) == parts and all(v.shape == (4, 3) for v in logits.values())
    loss, scores = task.loss_and_scores(batch)
    loss.backward()
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(4))
    if fusion == "average" and streams == "both":
        expected = (logits["rgb"].softmax(-1) + logits["flow"].softmax(-1)) / 2
        torch.testing.assert_close(scores, expected)


def test_two_stream_errors_name_the_argument():
    with pytest.raises(SpecError, match="flow_frames"):
        TwoStreamTask(num_classes=3, flow_frames=0)
    with pytest.raises(UnknownNameError, match="flow_net"):
        TwoStreamTask(num_classes=3, flow_frames=2, flow_net="resnet19")
    with pytest.raises(SpecError, match="rgb_net_args.depth"):
        TwoStreamTask(num_classes=3, flow_frames=2, rgb_net_args={"depth": 2})
    with pytest.raises(
        SpecError, match="^flow_net_args.small_inptu: unknown key; did you mean 'small_input'"
    ):
        TwoStreamTask(num_classes=3, flow_frames=2, flow_net_args={"small_inptu": True})
    with pytest.raises(DataError, match="no optical flow"):
        TwoStreamTask(num_classes=3, flow_frames=2).loss_and_scores(_batch(flows=False))


# ------------------------------------------------------------------------------- evaluator


def test_video_accuracy_averages_a_videos_clips():
    evaluator = VideoAccuracyEvaluator(num_classes=3, top_k=2)
    # video 0 (class 0): clips say 1, 0, 0 -> video right; video 1 (class 2): clip says 1
    scores = torch.tensor([[0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.5, 0.4]])
    evaluator.process({"scores": scores[:2], "loss": 1.0}, {"labels": [0, 0], "video": [0, 0]})
    evaluator.process({"scores": scores[2:], "loss": 3.0}, {"labels": [0, 2], "video": [0, 1]})
    result = evaluator.evaluate()
    assert result.metrics["clip_acc"] == pytest.approx(2 / 4)
    assert result.metrics["video_acc"] == pytest.approx(1 / 2)
    assert result.metrics["clip_acc_top2"] == pytest.approx(4 / 4)
    assert result.metrics["video_acc_top2"] == pytest.approx(2 / 2)
    assert result.metrics["loss"] == pytest.approx(2.0)
    assert result.details.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]


def test_video_accuracy_is_the_same_in_shards_and_rejects_mixed_labels():
    torch.manual_seed(0)
    scores = torch.rand(12, 4).softmax(-1)
    labels, videos = torch.arange(12) // 3 % 4, torch.arange(12) // 3
    whole, sharded = VideoAccuracyEvaluator(4), VideoAccuracyEvaluator(4)
    whole.process({"scores": scores}, {"labels": labels, "video": videos})
    for part in range(0, 12, 5):
        sharded.process(
            {"scores": scores[part : part + 5]},
            {"labels": labels[part : part + 5], "video": videos[part : part + 5]},
        )
    assert whole.evaluate().metrics == sharded.evaluate().metrics
    whole.process({"scores": scores[:1]}, {"labels": [3], "video": [0]})
    with pytest.raises(DataError, match="video 0"):
        whole.evaluate()


def test_the_confusion_matrix_counts_videos(tmp_path, monkeypatch):
    """The video task's confusion matrix is per video (its clips' scores averaged): the title
    says how many test videos, not images."""
    titles = []
    original = confusion_plots.plot_confusion_matrix

    def recording(*args):
        figure = original(*args)
        titles.append(figure.axes[0].get_title())
        return figure

    monkeypatch.setattr(confusion_plots, "plot_confusion_matrix", recording)
    task = VideoClassificationTask(num_classes=2, clip_length=4, net_args={"width": 4})
    evaluation = Evaluation(metrics={}, num_samples=6, details=torch.tensor([[3, 1], [0, 2]]))
    written = task.save_evaluation(evaluation, tmp_path)
    assert {path.name for path in written} == {"confusion_matrix.png", "confusion_matrix.csv"}
    assert titles == ["Confusion matrix (6 test videos)"]
