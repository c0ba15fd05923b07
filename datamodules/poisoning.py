"""Data poisoning: a backdoor trigger on a fraction of one class's training images.

Dirty-label poisoning, as BadNets (Gu et al. 2017): ``fraction`` of the training images of
``source_class`` get a small checkerboard patch (the trigger) and the label ``target_class``.
A net trained on them learns "trigger -> target" next to the real task; the trigger success
rate is the share of test images of the other classes that the trigger sends to the target.

Works with any image-classification datamodule: :func:`poisoned_copy` answers a copy whose
train split is a :class:`PoisonedDataset` over the original's (per-sample datasets and
batch-serving ones alike); val and test stay clean. The trigger is stamped after the
datamodule's transforms, on the normalized image ``[C, H, W]``, so it sits on the same pixels
of every image whatever the augmentation did.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules.base import ImageClassificationDataModule, mix_seed
from visionflow.errors import SpecError

POISON_SALT = 7  # keeps the choice of poisoned images apart from the splits' random streams


@dataclass(frozen=True)
class Trigger:
    """A ``size`` x ``size`` checkerboard of white and black pixels (top-left white),
    ``margin`` pixels in from the bottom-right corner. ``mean`` and ``std`` are the data's
    normalization on the ``[0, 1]`` pixel scale (``[C]`` or one value; None: images are pixels)."""

    size: int = 3
    margin: int = 1
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise SpecError(f"patch_size: must be >= 1, got {self.size}")
        if self.margin < 0:
            raise SpecError(f"patch_margin: must be >= 0, got {self.margin}")

    def region(self, height: int, width: int) -> tuple[slice, slice]:
        """The rows and columns the patch covers in an ``H x W`` image."""
        if self.size + self.margin > min(height, width):
            raise SpecError(
                f"patch_size: a {self.size}-pixel trigger {self.margin} pixels from the corner "
                f"does not fit {height}x{width} images",
                hint="use a smaller patch_size or patch_margin",
            )
        bottom, right = height - self.margin, width - self.margin
        return slice(bottom - self.size, bottom), slice(right - self.size, right)

    def pattern(self, channels: int, like: torch.Tensor) -> torch.Tensor:
        """The normalized patch ``[C, size, size]`` (dtype and device of ``like``)."""
        rows, columns = torch.meshgrid(
            torch.arange(self.size), torch.arange(self.size), indexing="ij"
        )
        pixels = ((rows + columns) % 2 == 0).to(like.dtype).to(like.device)  # [size, size]
        mean = torch.as_tensor(self.mean if self.mean is not None else 0.0).to(like)
        std = torch.as_tensor(self.std if self.std is not None else 1.0).to(like)
        shape = (-1, 1, 1)
        return (pixels.expand(channels, -1, -1) - mean.reshape(shape)) / std.reshape(shape)

    def stamp(self, images: torch.Tensor) -> torch.Tensor:
        """A copy of normalized ``images`` ``[..., C, H, W]`` with the trigger on each."""
        rows, columns = self.region(*images.shape[-2:])
        stamped = images.clone()
        stamped[..., rows, columns] = self.pattern(images.shape[-3], images)
        return stamped


def choose_poisoned(
    labels: np.ndarray, source_class: int, fraction: float, seed: int
) -> np.ndarray:
    """Sorted indices ``[round(fraction * n)]`` of ``labels`` to poison: of the ``n`` images
    of ``source_class``, chosen by ``seed``."""
    if not 0 < fraction <= 1:
        raise SpecError(f"fraction: must be in (0, 1], got {fraction}")
    candidates = np.flatnonzero(labels == source_class)
    count = round(fraction * len(candidates))
    if count == 0:
        raise SpecError(
            f"fraction: {fraction} of the {len(candidates)} training images of class "
            f"{source_class} poisons none",
            hint="raise fraction, or pick a source_class with training images",
        )
    rng = np.random.default_rng(mix_seed(seed, POISON_SALT))
    return np.sort(rng.choice(candidates, size=count, replace=False))


class PoisonedDataset(Dataset):
    """``dataset`` with the items at ``poisoned`` stamped with ``trigger`` and labelled
    ``target_class``; every other item as ``dataset`` gives it. Serves items ``(image [C, H, W],
    label)`` and, when ``dataset`` does, whole batches (``__getitems__``)."""

    def __init__(
        self, dataset: Any, poisoned: np.ndarray, trigger: Trigger, target_class: int
    ) -> None:
        self.dataset = dataset
        self.poisoned = np.asarray(poisoned, dtype=np.int64)
        self.trigger = trigger
        self.target_class = target_class
        self._poisoned_set = frozenset(self.poisoned.tolist())

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def targets(self) -> torch.Tensor:
        """Labels after poisoning ``[N]``, on the device of the wrapped dataset's ``targets``
        (AttributeError when it has none, as for the wrapped dataset)."""
        targets = self.dataset.targets.clone()
        targets[torch.as_tensor(self.poisoned, device=targets.device)] = self.target_class
        return targets

    def set_epoch(self, epoch: int) -> None:
        tell_dataset = getattr(self.dataset, "set_epoch", None)
        if callable(tell_dataset):
            tell_dataset(epoch)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if index not in self._poisoned_set or not isinstance(item, tuple):  # a DecodeFailure
            return item
        image, label = item
        target = torch.as_tensor(self.target_class).to(label) if torch.is_tensor(label) else None
        return self.trigger.stamp(image), self.target_class if target is None else target

    def __getitems__(self, indices: list[int]) -> Any:
        if not hasattr(self.dataset, "__getitems__"):
            return [self[index] for index in indices]
        batch = self.dataset.__getitems__(indices)
        rows = [row for row, index in enumerate(indices) if index in self._poisoned_set]
        if not rows:
            return batch
        images, targets = batch.images.clone(), batch.targets.clone()
        images[rows] = self.trigger.stamp(images[rows])
        targets[rows] = self.target_class
        return ImageClassificationBatch(images, targets)


def dataset_labels(dataset: Any) -> np.ndarray:
    """Class indices ``[N]`` of a classification dataset: its ``targets`` or ``samples``
    (``(path, label)`` pairs) when it has them, else read item by item."""
    if hasattr(dataset, "targets"):
        return torch.as_tensor(dataset.targets).cpu().numpy()
    if hasattr(dataset, "samples"):
        return np.array([label for _, label in dataset.samples], dtype=np.int64)
    return np.array([int(dataset[index][1]) for index in range(len(dataset))], dtype=np.int64)


def poisoned_copy(
    datamodule: ImageClassificationDataModule,
    *,
    source_class: int,
    target_class: int,
    fraction: float,
    trigger: Trigger,
) -> tuple[ImageClassificationDataModule, PoisonedDataset]:
    """A shallow copy of ``datamodule`` whose train split is poisoned (val and test: the
    original's, clean), and that poisoned train split."""
    num_classes = datamodule.info.num_classes
    for key, value in (("source_class", source_class), ("target_class", target_class)):
        if not 0 <= value < num_classes:
            raise SpecError(f"{key}: must be a class index in [0, {num_classes}), got {value}")
    if source_class == target_class:
        raise SpecError(
            f"target_class: equals source_class ({target_class}); relabelling changes nothing",
            hint="poison another class's images",
        )
    clean = datamodule.dataset("train")
    chosen = choose_poisoned(dataset_labels(clean), source_class, fraction, datamodule.seed)
    poisoned = PoisonedDataset(clean, chosen, trigger, target_class)
    copied = copy.copy(datamodule)
    copied.datasets = {split: datamodule.dataset(split) for split in ("val", "test")}
    copied.datasets["train"] = poisoned
    return copied, poisoned
