"""The datamodule side of the pipeline protocol, and what every image-classification datamodule shares.

:class:`VisionDataModule` is the base of every registered datamodule: Lightning's four dataloader
hooks from one ``_dataloader(split, shuffle)``, plus what the pipeline reads from it, ``info`` (the
batch type's ``DatasetInfo``) and ``transform_summary()`` (written to the run directory).

:class:`ImageClassificationDataModule` is the classification base. A subclass says where its
images come from (``_build_dataset``), what its classes are called and how its loader batches
(``_dataloader``); this class
owns the common arguments, the transform pipelines (built and checked at construction, so a bad
preset fails before any data is read), the splits, seeding, ``info`` and ``transform_summary``.

Splits are ``train``, ``val`` and ``test``; ``predict`` reads ``test``. Sources without a val
split hold out ``val_fraction`` of train, stratified by class and fixed by ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import albumentations as A
import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, get_worker_info

from visionflow.batches import (
    ClassificationDatasetInfo,
    DatasetInfo,
    ImageClassificationBatch,
)
from visionflow.datamodules.splits import DatasetsBySplit
from visionflow.datamodules.transforms import (
    PHASES,
    TransformContext,
    build_transform,
    describe_transform,
    flatten,
    output_shape,
    resolve_transforms,
)
from visionflow.errors import DataError, SpecError


class VisionDataModule(pl.LightningDataModule):
    """Base of every datamodule. Lightning's four dataloader hooks come from one
    ``_dataloader(split, shuffle)``: train shuffled, val and test in order, predict on the test
    split. The pipeline reads :attr:`info` and :meth:`transform_summary`."""

    @property
    def info(self) -> DatasetInfo:
        """What a task needs to know of the data (an instance of the batch type's ``info_type``),
        known without reading every sample."""
        raise NotImplementedError

    def transform_summary(self) -> dict[str, Any]:
        """The augmentation pipelines as plain data, written to ``transforms.yaml``; {} if none."""
        return {}

    def train_dataloader(self) -> DataLoader:
        return self._dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._dataloader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._dataloader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._dataloader("test", shuffle=False)

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        raise NotImplementedError


class ImageClassificationDataModule(DatasetsBySplit, VisionDataModule):
    """Base of the classification datamodules; see the module docstring. Subclasses pass their
    :class:`TransformContext` and the loader arguments (``**loader``: the spec checker reads them
    here, ``visionflow.arguments.parameters_of``), and set ``default_transforms``."""

    #: The presets used for the phases that the ``transforms`` argument leaves out.
    default_transforms: ClassVar[dict[str, Any]] = {"train": "normalize", "eval": "normalize"}

    def __init__(
        self,
        context: TransformContext,
        /,
        *,
        batch_size: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        val_fraction: float = 0.1,
        transforms: dict | None = None,
        device: str = "cpu",
        limit: int | None = None,
    ):
        super().__init__()
        _check_common_arguments(batch_size, num_workers, val_fraction, device, limit)
        # The subclasses' arguments too; not logged, so they cannot clash with the task's hparams.
        self.save_hyperparameters(ignore=["context"], logger=False)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.val_fraction = val_fraction
        self.device = device
        self.limit = limit
        self.context = context
        self.rank = 0
        self.transform_specs = resolve_transforms(transforms, self.default_transforms)
        self.pipelines = {
            phase: build_transform(self.transform_specs[phase], context, f"transforms.{phase}")
            for phase in PHASES
        }
        self.output_shapes = self._check_pipelines()
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------------------ description

    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def info(self) -> ClassificationDatasetInfo:
        """Classes, channels, the ``(H, W)`` after the eval pipeline and its normalization,
        without reading images."""
        height, width, channels = self.output_shapes["eval"]
        mean, std = pixel_normalization(self.pipelines["eval"])
        return ClassificationDatasetInfo(
            num_classes=len(self.class_names),
            class_names=self.class_names,
            in_channels=channels,
            image_size=(height, width),
            pixel_mean=mean,
            pixel_std=std,
        )

    def transform_summary(self) -> dict[str, Any]:
        """The resolved pipelines as plain data: ``{"train": ..., "eval": ...}`` in the format of
        ``albumentations.to_dict`` (``A.from_dict`` rebuilds them)."""
        return {phase: describe_transform(self.pipelines[phase]) for phase in PHASES}

    def probe_shapes(self) -> list[tuple[int, int, int]]:
        """Blank ``(H, W, C)`` images to try the pipelines on: one of the source size."""
        height, width = self.context.source_size
        return [(height, width, self.context.channels)]

    def _check_pipelines(self) -> dict[str, tuple[int, int, int]]:
        """``{phase: (H, W, C)}`` each pipeline makes of the probe images; a pipeline that fails
        on them, or whose output size depends on the input, raises SpecError now."""
        shapes = {}
        for phase in PHASES:
            where = f"transforms.{phase}"
            outputs = {
                output_shape(self.pipelines[phase], shape, where) for shape in self.probe_shapes()
            }
            if len(outputs) > 1:
                raise SpecError(
                    f"{where}: the pipeline's output size depends on the input size "
                    f"({' vs '.join(str(o) for o in sorted(outputs))})",
                    hint="end it with a fixed-size Resize or crop, as imagenet_eval",
                )
            shapes[phase] = outputs.pop()
        return shapes

    # ------------------------------------------------------------------------------------ data

    def phase(self, split: str) -> str:
        """``"train"`` for the train split, ``"eval"`` for val and test."""
        return "train" if split == "train" else "eval"

    def limited(self, labels: np.ndarray) -> np.ndarray:
        """Indices of the samples a split keeps: all, or ``limit`` of them chosen by seed,
        stratified by ``labels``."""
        count = len(labels)
        if self.limit is None or count <= self.limit:
            return np.arange(count)
        return holdout_split(labels, self.limit / count, self.seed, salt=2)[1]

    # ----------------------------------------------------------------------------- dataloaders

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """A batch already on ``device`` (GPU-resident data, CPU training) as it is: Lightning's
        generic walk over the batch's fields costs more per step than the whole step of a small
        model."""
        if (
            isinstance(batch, ImageClassificationBatch)
            and batch.images.device == device
            and batch.targets.device == device
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def make_loader(
        self,
        dataset: Dataset,
        *,
        shuffle: bool,
        collate_fn: Callable[[Any], Any],
        num_workers: int,
        pin_memory: bool,
        loader_class: type[DataLoader] = DataLoader,
    ) -> DataLoader:
        """A torch DataLoader of ``batch_size`` batches. The train sampler is a RandomSampler,
        so Lightning swaps in a shuffling DistributedSampler under DDP."""
        pin_memory = pin_memory and torch.cuda.is_available()
        return loader_class(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(dataset, self.seed) if shuffle else None,
            collate_fn=PinnableCollate(collate_fn) if pin_memory else collate_fn,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=pin_memory,
        )


# ------------------------------------------------------------------------------ loader helpers


def pixel_normalization(
    pipeline: A.Compose,
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """``(mean, std)`` on the ``[0, 1]`` pixel scale of the standard ``Normalize`` in ``pipeline``
    (uint8 input), or ``(None, None)`` when it has none."""
    for transform in flatten(pipeline):
        if isinstance(transform, A.Normalize) and transform.normalization == "standard":
            scale = transform.max_pixel_value / 255.0
            mean, std = (
                tuple(float(v) * scale for v in np.atleast_1d(stat))
                for stat in (transform.mean, transform.std)
            )
            return mean, std
    return None, None


def keep_batch(batch: ImageClassificationBatch) -> ImageClassificationBatch:
    """Collate for datasets whose ``__getitems__`` already returns the whole batch."""
    return batch


class PinnableBatch(ImageClassificationBatch):
    """A batch that torch's pin-memory thread can pin (it pins objects with ``pin_memory()``);
    pinning returns a plain :class:`ImageClassificationBatch`."""

    def pin_memory(self) -> ImageClassificationBatch:
        return ImageClassificationBatch(self.images.pin_memory(), self.targets.pin_memory())


class PinnableCollate:
    """Wraps a collate function so its batches come out as :class:`PinnableBatch`."""

    def __init__(self, collate_fn: Callable[[Any], Any]):
        self.collate_fn = collate_fn

    def __call__(self, samples: Any) -> Any:
        batch = self.collate_fn(samples)
        if type(batch) is ImageClassificationBatch:
            return PinnableBatch(batch.images, batch.targets)
        return batch


class EpochShuffleSampler(RandomSampler):
    """A random permutation per epoch, from ``(seed, epoch)`` alone: the same order on every run
    and after a resume. Lightning calls ``set_epoch`` each epoch; without it the epoch advances
    by one per pass. The epoch is passed on to the dataset (it seeds augmentation with it)."""

    def __init__(self, data_source: Any, seed: int):
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        tell_dataset = getattr(self.data_source, "set_epoch", None)
        if callable(tell_dataset):
            tell_dataset(epoch)

    def __iter__(self):
        epoch = self.epoch
        self.set_epoch(epoch)
        generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        order = torch.randperm(len(self.data_source), generator=generator).tolist()
        self.epoch = epoch + 1
        yield from order


# ------------------------------------------------------------------------------- seeds, splits


class EpochSeeding:
    """Seeds for a dataset's augmentation, keyed on ``(seed, rank, epoch, worker)``.

    :meth:`new_seed` answers a fresh seed the first time it is asked in a new epoch or a new
    DataLoader worker (each worker holds its own copy of the dataset), and None otherwise.
    """

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank, self.epoch = seed, rank, 0
        self._key: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def new_seed(self) -> int | None:
        worker = get_worker_info()
        key = (self.epoch, worker.id + 1 if worker is not None else 0)
        if key == self._key:
            return None
        self._key = key
        return mix_seed(self.seed, self.rank, *key)


def mix_seed(*parts: int) -> int:
    """One 32-bit seed (what albumentations and numpy accept) from several integers."""
    words = [int(p) % (1 << 32) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def holdout_split(
    labels: np.ndarray, fraction: float, seed: int, salt: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``[0, N)`` into ``(kept, held_out)``, both sorted, deterministic in ``seed``.

    ``held_out`` holds ``round(fraction * N)`` indices (at least one when ``fraction > 0`` and
    N > 1), stratified: every class gives its share, interleaved so even classes with a single
    image spread evenly. ``salt`` makes independent splits of the same labels (test vs val).
    """
    count = len(labels)
    held = int(np.floor(fraction * count + 0.5))
    if fraction > 0 and count > 1:
        held = min(max(held, 1), count - 1)
    order = np.random.default_rng(mix_seed(seed, salt)).permutation(count)
    by_class = np.argsort(labels[order], kind="stable")  # grouped by class, shuffled within
    _, starts, sizes = np.unique(labels[order][by_class], return_index=True, return_counts=True)
    rank = np.arange(count) - np.repeat(starts, sizes)
    position = np.empty(count)  # place within its class, as a fraction of the class size
    position[by_class] = (rank + 0.5) / np.repeat(sizes, sizes)
    held_out = np.sort(order[np.argsort(position, kind="stable")[:held]])
    return np.setdiff1d(np.arange(count), held_out), held_out


def split_records(split: str, load: Callable[[str], list | None]) -> list:
    """The records ``load(split)`` gives, the val split's for a test split that is not configured;
    a SpecError when neither is, a DataError when the split is empty."""
    records = load(split)
    if records is None and split == "test":
        records = load("val")
    if records is None:
        raise SpecError(
            f"the {split} split is not configured", hint=f"give the {split} split's files"
        )
    if not records:
        raise DataError(f"the {split} split has no images")
    return records


def _check_common_arguments(
    batch_size: int, num_workers: int, val_fraction: float, device: str, limit: int | None
) -> None:
    check_fraction("val_fraction", val_fraction)
    problems = [
        (batch_size < 1, f"batch_size: must be >= 1, got {batch_size}"),
        (num_workers < 0, f"num_workers: must be >= 0, got {num_workers}"),
        (limit is not None and limit < 1, f"limit: must be >= 1 or null, got {limit}"),
    ]
    for failed, message in problems:
        if failed:
            raise SpecError(message)
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise SpecError(
            f"device: {device!r} is not a torch device", hint="use cpu, cuda or cuda:N"
        ) from None


def resolve_device(device: str) -> torch.device:
    """``torch.device`` for ``device``; a bare ``cuda`` means this process's current GPU."""
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError(
                f"device: {device!r} requested but CUDA is not available",
                hint="set the datamodule's device to cpu",
            )
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def check_fraction(name: str, value: float) -> None:
    """SpecError unless ``0 <= value < 1``."""
    if not 0 <= value < 1:
        raise SpecError(f"{name}: must be in [0, 1), got {value}")


def square(size: int, name: str = "image_size") -> tuple[int, int]:
    """``(size, size)``; SpecError for sizes below one pixel."""
    if size < 1:
        raise SpecError(f"{name}: must be >= 1, got {size}")
    return size, size
