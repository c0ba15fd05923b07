"""scikit-learn's digits (real data, offline): splits, shapes, and that LeNet-5 can learn it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from visionflow.datamodules import DigitsDataModule


def test_splits_cover_the_1797_images_with_a_stratified_holdout():
    dm = DigitsDataModule()
    sizes = {split: len(dm.split_arrays(split)[1]) for split in ("train", "val", "test")}
    assert sizes == {"train": 1294, "val": 144, "test": 359}
    _, test_labels = dm.split_arrays("test")
    assert np.bincount(test_labels, minlength=10).min() >= 33  # every digit in the test split


def test_splits_partition_the_data_and_depend_only_on_the_seed():
    from sklearn.datasets import load_digits

    dm = DigitsDataModule(seed=0)
    digits = load_digits()
    everything = sorted(
        np.round(image * 255 / 16).astype(np.uint8).tobytes() + bytes([label])
        for image, label in zip(digits.images, digits.target)
    )
    parts = sorted(
        image.tobytes() + bytes([label])
        for split in ("train", "val", "test")
        for image, label in zip(*dm.split_arrays(split))
    )
    assert parts == everything  # each image in exactly one split (duplicates counted)
    again = DigitsDataModule(seed=0)
    for split in ("train", "val", "test"):
        assert np.array_equal(dm.split_arrays(split)[0], again.split_arrays(split)[0])
    other = DigitsDataModule(seed=1)
    assert not np.array_equal(dm.split_arrays("test")[1], other.split_arrays("test")[1])


def test_the_test_split_ignores_val_fraction():
    small, large = DigitsDataModule(val_fraction=0.05), DigitsDataModule(val_fraction=0.3)
    assert np.array_equal(small.split_arrays("test")[0], large.split_arrays("test")[0])
    assert len(large.split_arrays("val")[1]) > len(small.split_arrays("val")[1])


def test_batches_are_normalized_32x32_float_images():
    dm = DigitsDataModule(batch_size=64)
    assert dm.info.num_classes == 10 and dm.info.in_channels == 1
    assert dm.info.image_size == (32, 32) and dm.info.class_names[3] == "3"
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.images.shape == (64, 1, 32, 32) and batch.images.dtype == torch.float32
    assert batch.targets.dtype == torch.int64 and batch.targets.max() < 10
    val = torch.cat([b.images for b in dm.val_dataloader()])
    assert abs(val.mean().item()) < 0.2 and 0.7 < val.std().item() < 1.3


def test_image_size_argument_resizes_once_at_setup():
    dm = DigitsDataModule(image_size=16, transforms={"train": "digits_eval"})
    dm.setup("fit")
    assert dm.info.image_size == (16, 16)
    assert dm.dataset("train").images.shape == (1294, 1, 16, 16)
    assert dm.transform_summary()["execution"]["train"]["cached"] == ["Resize", "Normalize"]


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [B, 6, 14, 14]
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [B, 16, 5, 5]
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


@pytest.fixture
def one_thread():
    """LeNet is tiny: one thread is faster than several on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_lenet5_reaches_97_percent_on_the_held_out_test_split(one_thread):
    torch.manual_seed(0)
    dm = DigitsDataModule(batch_size=64, seed=0)
    dm.setup("fit")
    dm.setup("test")
    model, loader, epochs = lenet5(), dm.train_dataloader(), 10
    optimizer = torch.optim.Adam(model.parameters())
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=5e-3, total_steps=epochs * len(loader)
    )
    for _ in range(epochs):
        for batch in loader:
            loss = nn.functional.cross_entropy(model(batch.images), batch.targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        correct = sum(
            (model(b.images).argmax(1) == b.targets).sum().item() for b in dm.test_dataloader()
        )
    assert correct / len(dm.dataset("test")) >= 0.97
