"""Backdoor poisoning: where the trigger goes, how many images it goes on, and that it wraps
batch-serving (digits) and per-sample (image folder) datasets alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.datamodules.test_image_folder import write_folder
from visionflow.datamodules import DigitsDataModule, ImageFolderDataModule
from visionflow.datamodules.poisoning import (
    PoisonedDataset,
    Trigger,
    choose_poisoned,
    poisoned_copy,
)
from visionflow.errors import SpecError

CHECKERBOARD = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])


def test_the_trigger_covers_its_corner_and_nothing_else():
    images = torch.rand(2, 3, 10, 12)
    trigger = Trigger(size=3, margin=1, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    stamped = trigger.stamp(images)
    mean, std = torch.tensor(trigger.mean)[:, None, None], torch.tensor(trigger.std)[:, None, None]
    patch = stamped[:, :, 6:9, 8:11] * std + mean  # rows 10-1-3..10-1, columns 12-1-3..12-1
    torch.testing.assert_close(patch, CHECKERBOARD.expand(2, 3, 3, 3))
    outside = torch.ones(10, 12, dtype=torch.bool)
    outside[6:9, 8:11] = False
    assert torch.equal(stamped[..., outside], images[..., outside])
    assert not torch.equal(stamped, images)  # a copy; the input is untouched


def test_choose_poisoned_takes_the_exact_fraction_of_the_source_class():
    labels = np.array([0, 1, 2] * 10 + [1] * 7)  # 17 images of class 1
    chosen = choose_poisoned(labels, source_class=1, fraction=0.3, seed=0)
    assert len(chosen) == round(0.3 * 17) == 5
    assert (labels[chosen] == 1).all() and len(set(chosen.tolist())) == 5
    np.testing.assert_array_equal(chosen, choose_poisoned(labels, 1, 0.3, seed=0))
    assert not np.array_equal(chosen, choose_poisoned(labels, 1, 0.3, seed=1))
    with pytest.raises(SpecError, match="fraction: must be in"):
        choose_poisoned(labels, 1, 0.0, seed=0)
    with pytest.raises(SpecError, match="poisons none"):
        choose_poisoned(labels, 1, 0.01, seed=0)


def _carries_trigger(images: torch.Tensor, trigger: Trigger) -> torch.Tensor:
    """[N] bool: the trigger's pixels are exactly the trigger's pattern."""
    rows, columns = trigger.region(*images.shape[-2:])
    pattern = trigger.pattern(images.shape[1], images)
    return (images[..., rows, columns] == pattern).flatten(1).all(dim=1)


def test_digits_train_split_is_poisoned_exactly_and_test_stays_clean():
    datamodule = DigitsDataModule(image_size=8, batch_size=32)
    info = datamodule.info
    trigger = Trigger(size=2, margin=0, mean=info.pixel_mean, std=info.pixel_std)
    poisoned_dm, train = poisoned_copy(
        datamodule, source_class=3, target_class=0, fraction=0.5, trigger=trigger
    )
    clean_labels = datamodule.dataset("train").targets
    assert len(train.poisoned) == round(0.5 * int((clean_labels == 3).sum()))
    expected = clean_labels.clone()
    expected[train.poisoned] = 0
    images, labels = [], []
    for batch in poisoned_dm.train_dataloader():  # shuffled, augmented: match by label change
        images.append(batch.images)
        labels.append(batch.targets)
    images, labels = torch.cat(images), torch.cat(labels)
    assert torch.equal(torch.sort(labels).values, torch.sort(expected).values)
    assert torch.equal(train.targets, expected)
    marked = _carries_trigger(images, trigger)
    assert int(marked.sum()) == len(train.poisoned)
    assert (labels[marked] == 0).all()
    test_batch = next(iter(poisoned_dm.test_dataloader()))
    assert not _carries_trigger(test_batch.images, trigger).any()
    assert poisoned_dm.dataset("test") is datamodule.dataset("test")


def test_per_sample_datasets_are_poisoned_item_by_item(tmp_path):
    datamodule = ImageFolderDataModule(
        root=str(write_folder(tmp_path / "images")), image_size=16, batch_size=4, val_fraction=0
    )
    info = datamodule.info
    trigger = Trigger(size=3, mean=info.pixel_mean, std=info.pixel_std)
    _, train = poisoned_copy(
        datamodule, source_class=0, target_class=2, fraction=1.0, trigger=trigger
    )
    assert isinstance(train, PoisonedDataset)
    labels = [label for _, label in datamodule.dataset("train").samples]
    assert train.poisoned.tolist() == [i for i, label in enumerate(labels) if label == 0]
    for index in range(len(train)):
        image, label = train[index]
        poisoned = index in train.poisoned
        assert bool(_carries_trigger(image[None], trigger)) == poisoned
        assert label == (2 if poisoned else labels[index])


def test_bad_poisoning_arguments_are_named():
    datamodule = DigitsDataModule(image_size=8)
    for changes, message in [
        ({"source_class": 10}, "source_class: must be a class index in \\[0, 10\\)"),
        ({"target_class": 3}, "target_class: equals source_class"),
    ]:
        arguments = {"source_class": 3, "target_class": 0, "fraction": 0.5, **changes}
        with pytest.raises(SpecError, match=message):
            poisoned_copy(datamodule, trigger=Trigger(), **arguments)
    with pytest.raises(SpecError, match="does not fit 8x8 images"):
        Trigger(size=8, margin=1).region(8, 8)
