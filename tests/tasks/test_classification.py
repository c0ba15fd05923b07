"""ImageClassificationTask under a real Lightning Trainer, on tiny batches built here."""

from __future__ import annotations

import csv
import math
import typing
import urllib.error

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from visionflow.batches import ImageClassificationBatch, provided_arguments
from visionflow.errors import CheckpointError, RunError, SpecError
from visionflow.registry import TASKS
from visionflow.spec import check_arguments
from visionflow.tasks import ImageClassificationTask
from visionflow.tasks.classification import classification_loss, multiclass_hinge_loss
from visionflow.tasks.nets import build_net, split_backbone_head

SIZE = 8


def quadrant_batches(num_batches: int = 4, batch_size: int = 16, seed: int = 0):
    """A separable toy problem: class c in 0..3 lights up quadrant c of a noisy 1x8x8 image."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        targets = torch.randint(0, 4, (batch_size,), generator=generator)
        images = 0.1 * torch.randn(batch_size, 1, SIZE, SIZE, generator=generator)
        half = SIZE // 2
        for image, target in zip(images, targets.tolist()):
            row, col = divmod(target, 2)
            image[0, row * half : (row + 1) * half, col * half : (col + 1) * half] += 1.0
        batches.append(ImageClassificationBatch(images, targets))
    return batches


def random_batches(num_classes: int, num_batches: int = 2, batch_size: int = 8, size: int = SIZE):
    generator = torch.Generator().manual_seed(1)

    def batch() -> ImageClassificationBatch:
        return ImageClassificationBatch(
            torch.randn(batch_size, 1, size, size, generator=generator),
            torch.randint(0, num_classes, (batch_size,), generator=generator),
        )

    return [batch() for _ in range(num_batches)]


def loader(batches) -> DataLoader:
    return DataLoader(batches, batch_size=None)  # the batches are already batched


def make_trainer(**kwargs) -> Trainer:
    defaults = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return Trainer(**{**defaults, **kwargs})


def tiny_task(**kwargs) -> ImageClassificationTask:
    args = {
        "num_classes": 4,
        "in_channels": 1,
        "image_size": [SIZE, SIZE],
        "net": "linear",
        "scheduler": "none",
        **kwargs,
    }
    return ImageClassificationTask(**args)


# ----------------------------------------------------------------------------------- losses


def test_hinge_loss_matches_the_cs231n_example():
    scores = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    targets = torch.tensor([0, 1, 2])  # cat, car, frog: losses 2.9, 0, 12.9
    assert multiclass_hinge_loss(scores, targets).item() == pytest.approx((2.9 + 0 + 12.9) / 3)


def test_label_smoothing_mixes_in_the_uniform_target():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(5) % 4
    log_probs = logits.log_softmax(dim=1)
    expected = (
        0.9 * -log_probs.gather(1, targets[:, None]).squeeze(1) + 0.1 * -log_probs.mean(dim=1)
    ).mean()
    smoothed = classification_loss(logits, targets, "cross_entropy", 0.1)
    assert smoothed.item() == pytest.approx(expected.item())
    confident = 20.0 * torch.nn.functional.one_hot(targets, 4).float()
    assert classification_loss(confident, targets, "cross_entropy") < 1e-6
    assert classification_loss(confident, targets, "cross_entropy", 0.1) > 1.0  # less certainty


# ----------------------------------------------------------------------------- the contract


def test_registered_with_its_batch_type_and_spec_compatible_signature():
    entry = TASKS.get("image_classification")
    assert entry.builder is ImageClassificationTask
    assert entry.tags["batch"] is ImageClassificationBatch
    hints = typing.get_type_hints(ImageClassificationTask.__init__)
    assert {"num_classes", "net_args", "loss", "optimizer", "scheduler", "weights"} <= hints.keys()
    check_arguments(
        ImageClassificationTask,
        {"net": "lenet5", "optimizer": {"lr": 0.01, "momentum": 0.9}},
        "task.args",
        provided=provided_arguments(ImageClassificationBatch),
    )
    with pytest.raises(SpecError, match="task.args.optimizer.lrr: unknown key; did you mean 'lr'"):
        check_arguments(
            ImageClassificationTask,
            {"optimizer": {"lrr": 0.1}},
            "task.args",
            provided=provided_arguments(ImageClassificationBatch),
        )
    with pytest.raises(SpecError, match="task.args.loss: expected 'cross_entropy' or 'hinge'"):
        check_arguments(
            ImageClassificationTask,
            {"loss": "svm"},
            "task.args",
            provided=provided_arguments(ImageClassificationBatch),
        )


def test_fast_dev_run_logs_every_metric_and_predicts_probabilities():
    task = tiny_task(num_classes=7, net="lenet5", image_size=[16, 16])
    batches = [ImageClassificationBatch(torch.randn(6, 1, 16, 16), torch.arange(6))] * 2
    trainer = make_trainer(fast_dev_run=True)
    trainer.fit(task, loader(batches), loader(batches))
    logged = trainer.callback_metrics.keys()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_top5"} <= logged
    results = trainer.test(task, loader(batches), verbose=False)[0]
    assert set(results) == {"test/loss", "test/acc", "test/acc_top5"}
    probabilities = torch.cat(trainer.predict(task, loader(batches)))
    assert probabilities.shape == (6, 7)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(6))


def test_no_top5_with_five_classes_or_fewer():
    trainer = make_trainer(fast_dev_run=True)
    results = trainer.test(tiny_task(), loader(random_batches(4)), verbose=False)[0]
    assert set(results) == {"test/loss", "test/acc"}


@pytest.mark.parametrize("loss", ["cross_entropy", "hinge"])
def test_a_linear_classifier_learns_a_separable_problem(loss):
    torch.manual_seed(0)
    task = tiny_task(loss=loss, optimizer={"name": "sgd", "lr": 0.05})
    train, test = quadrant_batches(seed=0), quadrant_batches(num_batches=2, seed=1)
    first = classification_loss(task(test[0].images), test[0].targets, loss).item()
    make_trainer(max_epochs=8).fit(task, loader(train))
    results = make_trainer().test(task, loader(test), verbose=False)[0]
    assert results["test/acc"] == 1.0
    assert results["test/loss"] < first / 4


class RecordLR(Callback):
    """The first param group's LR at every training step, rounded."""

    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, *args):
        self.lrs.append(round(trainer.optimizers[0].param_groups[0]["lr"], 6))


def test_warmup_lr_per_optimizer_step_in_training():
    record = RecordLR()
    task = tiny_task(
        optimizer={"name": "sgd", "lr": 0.3}, scheduler={"name": "cosine", "warmup_epochs": 1}
    )
    data = loader(quadrant_batches(num_batches=3))
    make_trainer(max_epochs=3, callbacks=[record]).fit(task, data)
    cosine = [round(0.15 * (1 + math.cos(math.pi * step / 6)), 6) for step in range(6)]
    assert record.lrs == [0.1, 0.2, 0.3, *cosine]


def test_cosine_schedule_ends_at_max_steps():
    record = RecordLR()
    task = tiny_task(optimizer={"name": "sgd", "lr": 0.2}, scheduler={"name": "cosine"})
    make_trainer(max_steps=6, callbacks=[record]).fit(task, loader(quadrant_batches(num_batches=4)))
    assert record.lrs == [round(0.1 * (1 + math.cos(math.pi * step / 6)), 6) for step in range(6)]


def test_cosine_without_an_end_is_a_clear_error():
    with pytest.raises(SpecError, match="the cosine schedule needs a finite max_epochs"):
        make_trainer(max_epochs=-1).fit(
            tiny_task(scheduler={"name": "cosine"}), loader(quadrant_batches(num_batches=1))
        )


# --------------------------------------------------------------------------- fine-tuning


def test_backbone_lr_scale_makes_two_param_groups():
    task = tiny_task(
        net="lenet5",
        image_size=[16, 16],
        optimizer={"lr": 0.01},
        backbone_lr_scale=0.1,
        scheduler={"name": "cosine", "warmup_epochs": 1},
    )
    groups = task.parameter_groups()
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("backbone", pytest.approx(0.001)),
        ("head", 0.01),
    ]
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(task.parameters()))
    trainer = make_trainer(max_epochs=2)
    trainer.fit(task, loader(random_batches(4, batch_size=4, size=16)))
    backbone_lr, head_lr = (g["lr"] for g in trainer.optimizers[0].param_groups)
    assert backbone_lr == pytest.approx(head_lr * 0.1)


def test_freeze_backbone_trains_only_the_head():
    task = ImageClassificationTask(
        num_classes=3,
        in_channels=1,
        net="resnet18",
        optimizer={"lr": 0.1},
        net_args={"small_input": True},
        freeze_backbone=True,
    )
    backbone, head = split_backbone_head(task.net)
    before = {name: value.clone() for name, value in task.net.state_dict().items()}
    make_trainer(max_epochs=1).fit(task, loader(random_batches(3, batch_size=4)))
    assert [g["name"] for g in task.parameter_groups()] == ["head"]
    assert all(p.grad is None for p in backbone)
    for name, value in task.net.state_dict().items():  # weights and BatchNorm statistics
        changed = not torch.equal(value, before[name])
        assert changed == name.startswith("fc."), name


def test_frozen_batchnorm_stays_in_eval_mode_through_train():
    task = ImageClassificationTask(num_classes=3, net="resnet18", freeze_backbone=True)
    task.train()
    assert task.training and task.net.fc.training
    assert not task.net.bn1.training and not task.net.layer4[1].bn2.training


def test_weights_file_initializes_the_backbone_and_replaces_the_head(tmp_path):
    source = build_net("lenet5", num_classes=10, in_channels=1, image_size=[16, 16])
    torch.save(source.state_dict(), tmp_path / "lenet10.pt")
    task = tiny_task(net="lenet5", image_size=[16, 16], weights=str(tmp_path / "lenet10.pt"))
    assert torch.equal(task.net.features[0].weight, source.features[0].weight)
    assert task.net.classifier[6].out_features == 4


def test_pretrained_offline_is_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError, match="pretrained: cannot download") as error:
        ImageClassificationTask(num_classes=3, net="resnet18", pretrained=True)
    assert "weights: /path" in error.value.hint


# ---------------------------------------------------------------------------- checkpoints


def test_checkpoint_loads_and_resumes_with_weights_only(tmp_path):
    weights = tmp_path / "init.pt"
    torch.save(
        build_net("linear", num_classes=4, in_channels=1, image_size=[SIZE, SIZE]).state_dict(),
        weights,
    )
    task = tiny_task(
        weights=str(weights),
        class_names=list("abcd"),
        scheduler={"name": "cosine", "warmup_epochs": 1},
    )
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="last")
    data = loader(quadrant_batches(num_batches=2))
    make_trainer(max_epochs=2, enable_checkpointing=True, callbacks=[checkpoint]).fit(task, data)
    path = tmp_path / "last.ckpt"
    raw = torch.load(path, weights_only=True)
    assert raw["hyper_parameters"]["class_names"] == list("abcd")
    weights.unlink()  # restoring must not need the initial weights again
    restored = ImageClassificationTask.load_from_checkpoint(path, weights_only=True)
    assert restored.hparams.weights == str(weights)
    for key, value in task.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    resumed = tiny_task(scheduler={"name": "cosine", "warmup_epochs": 1})
    trainer = make_trainer(max_epochs=3)
    trainer.fit(resumed, data, ckpt_path=path, weights_only=True)
    assert trainer.current_epoch == 3 and trainer.global_step == 6


def test_hyperparameters_are_plain_data():
    def plain(value):
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return value is None or isinstance(value, (bool, int, float, str))

    task = tiny_task(net="mlp", net_args={"hidden_sizes": [8, 4]}, image_size=(SIZE, SIZE))
    assert plain(dict(task.hparams))


# ------------------------------------------------------------------------ confusion matrix


def test_confusion_matrix_counts_and_artifacts(tmp_path):
    torch.manual_seed(0)
    task = tiny_task(class_names=["cat", "dog", "frog, green", "ship"])
    batches = random_batches(4, num_batches=3)
    assert task.save_artifacts("fit", tmp_path) == []
    with pytest.raises(RunError, match="no test epoch has run"):
        task.save_artifacts("test", tmp_path)
    make_trainer().test(task, loader(batches), verbose=False)

    expected = torch.zeros(4, 4, dtype=torch.int64)
    with torch.no_grad():
        for batch in batches:
            predictions = task(batch.images).argmax(dim=1)
            for true, predicted in zip(batch.targets.tolist(), predictions.tolist()):
                expected[true, predicted] += 1
    matrix = task.test_confusion_matrix
    assert matrix.dtype == torch.int64 and matrix.device.type == "cpu"
    assert torch.equal(matrix, expected) and matrix.sum() == 24

    paths = task.save_artifacts("test", tmp_path / "plots")
    assert [p.name for p in paths] == ["confusion_matrix.png", "confusion_matrix.csv"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.reader(paths[1].open()))
    assert rows[0] == ["true\\predicted", "cat", "dog", "frog, green", "ship"]
    assert [row[0] for row in rows[1:]] == ["cat", "dog", "frog, green", "ship"]
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == expected.tolist()
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths)


def test_channels_last_trains():
    task = tiny_task(net="lenet5", image_size=[16, 16], channels_last=True)
    assert task.net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    batches = [ImageClassificationBatch(torch.randn(4, 1, 16, 16), torch.arange(4))]
    make_trainer(fast_dev_run=True).fit(task, loader(batches))


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "num_classes: must be >= 2"),
        ({"class_names": ["a", "b"]}, "class_names: 2 names for num_classes=4"),
        ({"loss": "hinge", "label_smoothing": 0.1}, "label_smoothing: applies to the cross"),
        ({"dropout": 1.0}, r"dropout: must be in \[0, 1\)"),
        ({"weights": "w.pt", "pretrained": True}, "pretrained: set weights or pretrained"),
        ({"freeze_backbone": True, "backbone_lr_scale": 0.1}, "backbone_lr_scale: has no"),
        ({"backbone_lr_scale": 0.0}, "backbone_lr_scale: must be > 0"),
        ({"optimizer": {"name": "adam", "nesterov": True}}, "optimizer.nesterov: only sgd"),
        ({"scheduler": {"name": "step", "step_size": 0}}, "scheduler.step_size: must be >= 1"),
        (
            {"net": "lenet", "image_size": None},
            "net: unknown classification net 'lenet'; did you mean",
        ),
        ({"net_args": {"depth": 3}}, "net_args.depth: unknown key"),
    ],
)
def test_bad_arguments_are_one_line_spec_errors(kwargs, message):
    with pytest.raises(SpecError, match=message) as error:
        tiny_task(**kwargs)
    assert "\n" not in error.value.message
