"""Class subfolders of image files (JPEG, PNG, BMP, WebP), decoded per sample in worker processes.

Two layouts under ``root``::

    root/<class>/<image>                      split by seed: test_fraction, then val_fraction
    root/train/<class>/<image>                ImageNet style; val/ and test/ are optional:
    root/val/<class>/<image>                  without val/, val_fraction of train is held out;
    root/test/<class>/<image>                 without test/, test reads the val split

Class indices follow the sorted train class folders. Images are converted to RGB (``channels: 3``;
grayscale, palette and RGBA files included, EXIF rotation applied) or to grayscale
(``channels: 1``). A file that cannot be decoded raises a DataError naming it, or with
``skip_bad_files: true`` is left out of its batch with a warning. The DataError of a worker
process is raised again in the main process by :class:`ImageFolderLoader`, with its own message
rather than torch's worker traceback.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from visionflow.batches import ImageClassificationBatch
from visionflow.datamodules.base import (
    EpochSeeding,
    ImageClassificationDataModule,
    check_fraction,
    holdout_split,
    square,
)
from visionflow.datamodules.transforms import TransformContext
from visionflow.errors import DataError, SpecError
from visionflow.registry import DATAMODULES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Sample = tuple[str, int]  # (path, class index)


def decode_image(path: str, channels: int) -> np.ndarray:
    """The image at ``path`` as uint8 ``[H, W, channels]``; DataError naming the file if it
    cannot be decoded."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("P", "PA"):  # palette transparency converts cleanly through RGBA
                image = image.convert("RGBA")
            converted = image.convert("RGB" if channels == 3 else "L")
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, ... for bad files
        raise DataError(
            f"{path}: cannot decode image ({type(error).__name__}: {error})",
            hint="replace or delete the file, or set skip_bad_files: true",
        ) from None
    array = np.asarray(converted)
    return array[..., None] if array.ndim == 2 else array


@dataclass
class DecodeFailure:
    """Stands in for a sample (and then for its batch) whose image could not be decoded."""

    error: DataError


class ImageFileDataset(Dataset):
    """``samples`` of ``(path, label)``; item ``i`` is ``(image float32 [C, H, W], label)`` after
    ``pipeline``, or a :class:`DecodeFailure`."""

    def __init__(
        self,
        samples: list[Sample],
        pipeline: A.Compose,
        channels: int,
        *,
        seed: int = 0,
        rank: int = 0,
    ):
        self.samples = samples
        self.pipeline = copy.deepcopy(pipeline)  # its own random state, apart from other splits'
        self.channels = channels
        self.seeding = EpochSeeding(seed, rank)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.seeding.set_epoch(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | DecodeFailure:
        if (seed := self.seeding.new_seed()) is not None:
            self.pipeline.set_random_seed(seed)
        path, label = self.samples[index]
        try:
            image = decode_image(path, self.channels)
        except DataError as error:
            return DecodeFailure(error)
        transformed = self.pipeline(image=image)["image"]  # [H, W, C]
        return torch.from_numpy(np.ascontiguousarray(transformed)).permute(2, 0, 1).float(), label


class CollateImages:
    """Stacks samples into an :class:`ImageClassificationBatch`. A failed sample is dropped with
    a warning when ``skip_bad_files``, else the batch becomes its :class:`DecodeFailure`."""

    def __init__(self, skip_bad_files: bool, image_shape: tuple[int, int, int]):
        self.skip_bad_files = skip_bad_files
        self.image_shape = image_shape  # (C, H, W), for a batch whose every sample failed

    def __call__(self, samples: list[Any]) -> ImageClassificationBatch | DecodeFailure:
        failures = [s for s in samples if isinstance(s, DecodeFailure)]
        if failures and not self.skip_bad_files:
            return failures[0]
        for failure in failures:
            warnings.warn(f"skipping {failure.error.message}", stacklevel=2)
        good = [s for s in samples if not isinstance(s, DecodeFailure)]
        images = (
            torch.stack([image for image, _ in good])
            if good
            else torch.zeros((0, *self.image_shape))
        )
        return ImageClassificationBatch(
            images, torch.tensor([lbl for _, lbl in good], dtype=torch.int64)
        )


class ImageFolderLoader(DataLoader):
    """A DataLoader that raises a batch's :class:`DecodeFailure` as its DataError."""

    def __iter__(self):
        return _RaiseDecodeFailures(super().__iter__())


class _RaiseDecodeFailures:
    def __init__(self, batches: Any):
        self.batches = batches

    def __iter__(self):
        return self

    def __next__(self) -> ImageClassificationBatch:
        batch = next(self.batches)
        if isinstance(batch, DecodeFailure):
            raise batch.error
        return batch

    def __len__(self) -> int:
        return len(self.batches)

    def __getstate__(self) -> dict[str, Any]:  # torch's iterators cannot be pickled
        return {"batches": iter(())}


@DATAMODULES.register("image_folder", batch=ImageClassificationBatch)
class ImageFolderDataModule(ImageClassificationDataModule):
    """Class subfolders of JPEG/PNG images (flat or train/val/test), decoded in worker processes."""

    default_transforms = {"train": "imagenet_train", "eval": "imagenet_eval"}

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        channels: int = 3,
        test_fraction: float = 0.1,
        skip_bad_files: bool = False,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        *,
        batch_size: int = 32,
        **loader: Any,
    ):
        if channels not in (1, 3):
            raise SpecError(f"channels: must be 1 or 3, got {channels}")
        check_fraction("test_fraction", test_fraction)
        context = TransformContext(
            mean=_stats("mean", mean, IMAGENET_MEAN, channels),
            std=_stats("std", std, IMAGENET_STD, channels),
            image_size=square(image_size),
        )
        super().__init__(context, batch_size=batch_size, **loader)
        if torch.device(self.device).type != "cpu":
            warnings.warn(
                f"image_folder decodes on the host; device {self.device!r} is left to the "
                "Trainer, which moves each batch",
                stacklevel=2,
            )
        self.root = Path(root)
        self.channels = channels
        self.test_fraction = test_fraction
        self.skip_bad_files = skip_bad_files

    def probe_shapes(self) -> list[tuple[int, int, int]]:
        """Two blank images, landscape and portrait: a pipeline must bring both to one size."""
        return [(300, 400, self.context.channels), (400, 300, self.context.channels)]

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        folder = self.root / "train" if self._has_split_folders() else self.root
        names = tuple(sorted(p.name for p in _subfolders(folder)))
        if not names:
            raise DataError(
                f"{folder}: no class folders found",
                hint="expected root/<class>/<image> or root/train/<class>/<image>",
            )
        return names

    def _has_split_folders(self) -> bool:
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such folder", hint="set the datamodule's root")
        return (self.root / "train").is_dir()

    @cached_property
    def _splits(self) -> dict[str, list[Sample]]:
        """``{split: samples}`` from the folder layout (see the module docstring)."""
        if not self._has_split_folders():
            return self._split_by_seed(self._scan(self.root), {"test": self.test_fraction})
        present = {
            s: self._scan(self.root / s)
            for s in ("train", "val", "test")
            if (self.root / s).is_dir()
        }
        if "val" not in present:
            present.update(self._split_by_seed(present.pop("train"), {}))
        present.setdefault("test", present["val"])
        return present

    def _split_by_seed(
        self, samples: list[Sample], held_out: dict[str, float]
    ) -> dict[str, list[Sample]]:
        """Hold out each fraction of ``held_out`` (in order), then ``val_fraction``, from
        ``samples``; stratified and fixed by seed."""
        splits: dict[str, list[Sample]] = {}
        for salt, (split, fraction) in enumerate([*held_out.items(), ("val", self.val_fraction)]):
            labels = np.array([label for _, label in samples], dtype=np.int64)
            kept, held = holdout_split(labels, fraction, self.seed, salt=salt)
            splits[split] = [samples[i] for i in held]
            samples = [samples[i] for i in kept]
        return {"train": samples, **splits}

    def _scan(self, folder: Path) -> list[Sample]:
        """``(path, label)`` of every image under ``folder/<class>/``, sorted."""
        index = {name: i for i, name in enumerate(self.class_names)}
        samples = []
        for class_folder in _subfolders(folder):
            if class_folder.name not in index:
                raise DataError(
                    f"{class_folder}: class {class_folder.name!r} is not among the train classes",
                    hint="every split needs the train class folders",
                )
            files = sorted(
                p
                for p in class_folder.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            samples += [(str(p), index[class_folder.name]) for p in files]
        if not samples:
            raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in class folders")
        return samples

    def _build_dataset(self, split: str) -> ImageFileDataset:
        samples = self._splits[split]
        kept = self.limited(np.array([label for _, label in samples], dtype=np.int64))
        return ImageFileDataset(
            [samples[i] for i in kept],
            self.pipelines[self.phase(split)],
            self.channels,
            seed=self.seed,
            rank=self.rank,
        )

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        height, width, channels = self.output_shapes[self.phase(split)]
        collate = CollateImages(self.skip_bad_files, (channels, height, width))
        return self.make_loader(
            self.dataset(split),
            shuffle=shuffle,
            collate_fn=collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            loader_class=ImageFolderLoader,
        )


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _stats(
    name: str, given: list[float] | None, imagenet: tuple[float, ...], channels: int
) -> tuple[float, ...]:
    """Per-channel stats: ``given``, else ImageNet's (averaged for one channel)."""
    if given is None:
        return imagenet if channels == 3 else (float(np.mean(imagenet)),)
    if len(given) != channels:
        raise SpecError(f"{name}: {len(given)} values for {channels} channel(s)")
    return tuple(float(v) for v in given)
