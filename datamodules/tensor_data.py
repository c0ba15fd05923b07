"""Small-image datasets held as one tensor, served a whole batch at a time.

``TensorClassificationDataset`` implements ``__getitems__(indices)``: torch's DataLoader hands it a
batch of indices and it answers with a ready :class:`ImageClassificationBatch` (one indexing
operation, no Python call per sample); the loader's collate function passes the batch through.
The loader is still a plain ``DataLoader`` with a ``RandomSampler``, so Lightning can swap in a
``DistributedSampler`` under DDP.

How the transform pipeline runs (:class:`ExecutionPlan`), the trade-off in one place:

* **cached**: deterministic transforms (resize, pad, center crop, normalize) run once, in setup,
  over the whole split; the result is the stored tensor.
* **batched**: random crops and flips run per batch on the stored tensor (on the GPU with
  ``device: cuda``), with torch ops equivalent in distribution to albumentations' (not bit-equal:
  the random numbers come from torch). A standard-normalization step placed after them is moved
  into the cache, which is exact because crops and flips only move pixels.
* **per sample** (fallback): a pipeline with any other random transform (color jitter, rotation,
  ...) caches its deterministic prefix and runs the rest with albumentations per sample in
  ``__getitems__``, on the host. Correct for any pipeline, but a Python call per sample: use
  ``num_workers`` for these, or keep to crops and flips for speed.

Random numbers come from a generator keyed on ``(seed, rank, epoch, worker)``; the epoch arrives
through the shuffle sampler's ``set_epoch``. (Under DDP, Lightning's DistributedSampler does not
forward the epoch, so each rank's stream simply continues from epoch to epoch: still
reproducible for an uninterrupted run.)
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules.base import (
    EpochSeeding,
    ImageClassificationDataModule,
    holdout_split,
    keep_batch,
    resolve_device,
    square,
)
from visionflow.datamodules.transforms import TransformContext, flatten
from visionflow.datamodules.transforms.shift import BatchedRandomCrop, to_device

_DETERMINISTIC = (
    A.Resize,
    A.Normalize,
    A.CenterCrop,
    A.Crop,
    A.Pad,
    A.LongestMaxSize,
    A.SmallestMaxSize,
    A.ToFloat,
)
_CACHE_CHUNK = 4096  # images per albumentations call while caching


# ------------------------------------------------------------------------------ batched ops


@dataclass(frozen=True)
class BatchedFlip:
    """Flip each image of ``[B, C, H, W]`` along ``dim`` (-1 horizontal, -2 vertical) with
    probability ``p``."""

    p: float
    dim: int

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flip = torch.rand(images.shape[0], generator=generator) < self.p
        flip = to_device(flip, images.device).view(-1, 1, 1, 1)
        return torch.where(flip, images.flip(self.dim), images)


def batched_op(transform: Any) -> BatchedFlip | BatchedRandomCrop | None:
    """The tensor version of a random albumentations transform, or None when there is none."""
    if isinstance(transform, A.HorizontalFlip):
        return BatchedFlip(transform.p, -1)
    if isinstance(transform, A.VerticalFlip):
        return BatchedFlip(transform.p, -2)
    if isinstance(transform, A.RandomCrop) and transform.p == 1 and not transform.pad_if_needed:
        return BatchedRandomCrop(transform.height, transform.width)
    return None


def is_deterministic(transform: Any) -> bool:
    """Always applied, with fixed parameters."""
    random_placement = "random" in (
        getattr(transform, "position", None),
        getattr(transform, "pad_position", None),
    )
    return isinstance(transform, _DETERMINISTIC) and transform.p == 1 and not random_placement


def is_pointwise(transform: Any) -> bool:
    """Acts on each pixel alone, so it commutes with crops and flips."""
    if isinstance(transform, A.Normalize):
        return transform.normalization == "standard"
    return isinstance(transform, A.ToFloat)


@dataclass(frozen=True)
class ExecutionPlan:
    """Where each transform of a pipeline runs; see the module docstring."""

    cached: tuple[Any, ...]
    batched: tuple[BatchedFlip | BatchedRandomCrop, ...] = ()
    per_sample: A.Compose | None = None

    @classmethod
    def of(cls, pipeline: A.Compose) -> ExecutionPlan:
        transforms = flatten(pipeline)
        cached, batched = [], []
        for transform in transforms:
            if is_deterministic(transform) and (not batched or is_pointwise(transform)):
                cached.append(transform)
            elif (op := batched_op(transform)) is not None:
                batched.append(op)
            else:
                return cls._per_sample(transforms)
        return cls(tuple(cached), tuple(batched))

    @classmethod
    def _per_sample(cls, transforms: list[Any]) -> ExecutionPlan:
        prefix = 0
        while prefix < len(transforms) and is_deterministic(transforms[prefix]):
            prefix += 1
        return cls(tuple(transforms[:prefix]), per_sample=A.Compose(transforms[prefix:]))

    def cache(self, images: np.ndarray) -> np.ndarray:
        """Run the cached transforms over ``[N, H, W, C]`` uint8: ``[N, H', W', C']``."""
        if not self.cached:
            return images
        compose = A.Compose(list(self.cached))
        chunks = [
            compose(images=images[i : i + _CACHE_CHUNK])["images"]
            for i in range(0, len(images), _CACHE_CHUNK)
        ]
        return np.concatenate(chunks) if chunks else images.astype(np.float32)

    def describe(self) -> dict[str, list[str]]:
        per_sample = flatten(self.per_sample) if self.per_sample is not None else []
        return {
            "cached": [type(t).__name__ for t in self.cached],
            "batched": [repr(op) for op in self.batched],
            "per_sample": [type(t).__name__ for t in per_sample],
        }


# ---------------------------------------------------------------------------------- dataset


class TensorClassificationDataset(Dataset):
    """One split as tensors. ``images`` uint8 ``[N, H, W, C]``, ``labels`` int ``[N]``.

    After the cache: ``self.images`` float32 ``[N, C, H', W']`` on ``device`` (a host array
    ``[N, H', W', C']`` when the plan has per-sample transforms); ``self.targets`` int64 ``[N]``.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        pipeline: A.Compose,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        rank: int = 0,
    ):
        self.plan = ExecutionPlan.of(copy.deepcopy(pipeline))  # random state apart from others'
        device = torch.device(device)
        if self.plan.per_sample is not None and device.type != "cpu":
            warnings.warn(
                f"per-sample transforms {self.plan.describe()['per_sample']} run on "
                f"the host; keeping this split on the cpu instead of {device}",
                stacklevel=2,
            )
            device = torch.device("cpu")
        cached = self.plan.cache(images)
        if self.plan.per_sample is None:
            self.images = torch.from_numpy(cached).permute(0, 3, 1, 2).float().contiguous()
            self.images = self.images.to(device)
        else:
            self.images = cached
        self.targets = torch.as_tensor(np.asarray(labels), dtype=torch.int64).to(device)
        self.seeding = EpochSeeding(seed, rank)
        self._generator = torch.Generator()

    def __len__(self) -> int:
        return len(self.targets)

    def set_epoch(self, epoch: int) -> None:
        self.seeding.set_epoch(epoch)

    def __getitems__(self, indices: list[int]) -> ImageClassificationBatch:
        """The batch of ``indices``: images ``[B, C, H, W]``, targets ``[B]``."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        generator = self._epoch_generator()
        if self.plan.per_sample is not None:
            images = torch.stack([self._transform_one(i) for i in indices])
        else:
            images = self.images[to_device(index, self.images.device)]
            for op in self.plan.batched:
                images = op(images, generator)
        return ImageClassificationBatch(images, self.targets[to_device(index, self.targets.device)])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample, ``([C, H, W], [])``; loaders use ``__getitems__``."""
        batch = self.__getitems__([index])
        return batch.images[0], batch.targets[0]

    def _transform_one(self, index: int) -> torch.Tensor:
        image = self.plan.per_sample(image=self.images[index])["image"]  # [H, W, C]
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()

    def _epoch_generator(self) -> torch.Generator:
        seed = self.seeding.new_seed()
        if seed is not None:
            self._generator.manual_seed(seed)
            if self.plan.per_sample is not None:
                self.plan.per_sample.set_random_seed(seed)
        return self._generator


# ------------------------------------------------------------------------------ datamodule


class TensorDataModule(ImageClassificationDataModule):
    """Base of the small-image datamodules. A subclass implements :meth:`load_sources`;
    this class splits, caches and batches."""

    def load_sources(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train": (images, labels), "test": (images, labels)}``; images uint8
        ``[N, H, W, C]`` at ``context.source_size``, labels int ``[N]``."""
        raise NotImplementedError

    @cached_property
    def sources(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The source's own splits, as :meth:`load_sources` reads them (once)."""
        return self.load_sources()

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of ``split``: val is held out of train by ``val_fraction``."""
        images, labels = self.sources["test" if split == "test" else "train"]
        if split == "test":
            indices = np.arange(len(labels))
        else:
            kept, held_out = holdout_split(labels, self.val_fraction, self.seed, salt=1)
            indices = kept if split == "train" else held_out
        indices = indices[self.limited(labels[indices])]
        return images[indices], labels[indices]

    def _build_dataset(self, split: str) -> TensorClassificationDataset:
        images, labels = self.split_arrays(split)
        return TensorClassificationDataset(
            images,
            labels,
            self.pipelines[self.phase(split)],
            device=resolve_device(self.device),
            seed=self.seed,
            rank=self.rank,
        )

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        on_host = dataset.targets.device.type == "cpu"
        if not on_host and self.num_workers > 0:
            warnings.warn("num_workers is ignored for a dataset held on the GPU", stacklevel=2)
        return self.make_loader(
            dataset,
            shuffle=shuffle,
            collate_fn=keep_batch,
            num_workers=self.num_workers if on_host else 0,
            pin_memory=self.pin_memory and on_host,
        )

    def transform_summary(self) -> dict[str, Any]:
        """The pipelines (see the base class) and where each transform runs:
        ``execution: {train: {cached: [...], batched: [...], per_sample: [...]}, eval: ...}``."""
        summary = super().transform_summary()
        summary["execution"] = {
            phase: ExecutionPlan.of(pipeline).describe()
            for phase, pipeline in self.pipelines.items()
        }
        return summary


class FileTensorDataModule(TensorDataModule):
    """A tensor datamodule read from files under ``root`` (``download``: fetch them when missing,
    in ``prepare_data``): images of the class's ``source_size`` and ``mean``/``std`` statistics,
    resized to ``image_size`` (an int: square). A subclass names ``root``, ``download`` and
    ``image_size`` with its defaults and forwards the loader arguments (``**loader``)."""

    source_size: ClassVar[tuple[int, int]]
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]

    def __init__(
        self,
        root: str,
        download: bool,
        image_size: int,
        /,
        *,
        batch_size: int = 128,
        **loader: Any,
    ):
        context = TransformContext(
            mean=self.mean,
            std=self.std,
            image_size=square(image_size),
            source_size=self.source_size,
        )
        super().__init__(context, batch_size=batch_size, **loader)
        self.root = Path(root)
        self.download = download
