"""What other packages build against: registry names, constructor arguments the spec can check,
and a datamodule driving a real Lightning Trainer with no spec, CLI or Ray."""

from __future__ import annotations

import typing

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

import visionflow.datamodules as datamodules
from visionflow.arguments import parameters_of
from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules import DigitsDataModule, ImageClassificationDataModule
from visionflow.errors import SpecError
from visionflow.registry import DATAMODULES
from visionflow.spec import check_arguments

NAMES = ["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "image_folder"]
COMMON = [
    "batch_size",
    "num_workers",
    "pin_memory",
    "seed",
    "val_fraction",
    "transforms",
    "device",
    "limit",
]


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_the_classification_batch_and_common_arguments(name):
    entry = DATAMODULES.get(name)
    assert entry.tags["batch"] is ImageClassificationBatch
    assert issubclass(entry.builder, ImageClassificationDataModule) and entry.description
    base = typing.get_type_hints(ImageClassificationDataModule.__init__)
    parameters = {p.name: p for p in parameters_of(entry.builder)}
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for argument in COMMON:
        assert parameters[argument].annotation == base[argument], argument
    assert all(p.annotation is not p.empty for p in parameters.values())  # every one annotated


def test_the_spec_checks_datamodule_arguments():
    builder = DATAMODULES.get("cifar10").builder
    check_arguments(
        builder,
        {
            "root": "data",
            "batch_size": 64,
            "transforms": {"train": "x"},
            "limit": None,
            "device": "cuda",
        },
        "data.args",
    )
    with pytest.raises(
        SpecError, match="data.args.batch_sise: unknown key; did you mean 'batch_size'"
    ):
        check_arguments(builder, {"batch_sise": 64}, "data.args")
    with pytest.raises(SpecError, match="data.args.val_fraction: expected float"):
        check_arguments(builder, {"val_fraction": "ten percent"}, "data.args")
    with pytest.raises(SpecError, match="data.args.root: required key is missing"):
        check_arguments(DATAMODULES.get("image_folder").builder, {"batch_size": 2}, "data.args")


def test_the_package_exports_its_classes():
    for name in datamodules.__all__:
        assert getattr(datamodules, name).__module__.startswith("visionflow.datamodules")


class Linear(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(16 * 16, 10)
        self.seen: list[tuple[int, int]] = []

    def forward(self, batch: ImageClassificationBatch) -> torch.Tensor:
        return self.layer(batch.images.flatten(1))  # [B, 10]

    def training_step(self, batch: ImageClassificationBatch, index: int):
        assert type(batch) is ImageClassificationBatch and batch.images.shape[1:] == (1, 16, 16)
        self.seen.append((self.current_epoch, int(batch.targets[0])))
        return nn.functional.cross_entropy(self(batch), batch.targets)

    def validation_step(self, batch: ImageClassificationBatch, index: int):
        self.log("val_loss", nn.functional.cross_entropy(self(batch), batch.targets))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.slow
def test_a_datamodule_drives_a_lightning_trainer_alone(tmp_path):
    dm = DigitsDataModule(image_size=16, batch_size=32)
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    model = Linear()
    trainer.fit(model, datamodule=dm)
    assert [epoch for epoch, _ in model.seen] == [0, 0, 0, 1, 1, 1]
    assert dm.dataset("train").seeding.epoch == 1  # Lightning's set_epoch reached the dataset
    assert dm.hparams["image_size"] == 16 and "context" not in dm.hparams
    predictions = trainer.predict(model, dataloaders=dm.predict_dataloader())
    assert len(predictions) == len(dm.predict_dataloader())
