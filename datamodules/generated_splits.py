"""Datamodules whose data a generator writes on first use: the generator's arguments, once.

``GeneratedSplits`` is the base (first in the bases, before the datamodule class it feeds) of
``shapes_detection`` and its instance/keypoint variants, ``shapes_segmentation`` and
``shapes_panoptic``. It declares ``data_dir``, ``train_images``, ``val_images``, ``test_images``,
``image_size`` and ``data_seed``, checks them, forwards the remaining (loader) arguments and
``image_size`` up the class's bases (so the spec checker, which follows ``**kwargs`` there, shows
the generator's and the loader's keys as one list), and on ``prepare_data`` writes each split
folder (``data_dir/train``, ``val``, ``test``) that is missing or was made with other settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionflow.errors import SpecError, check_minimums

SPLITS = ("train", "val", "test")
MIN_IMAGE_SIZE = 32


class GeneratedSplits:
    """Base of a datamodule whose splits ``generate(folder, images, seed, image_size)`` writes.

    A subclass names the file each split folder holds (``info_file``, whose ``info`` says how the
    split was made) and the generator's name (``generator``, stored in that ``info``)."""

    info_file: ClassVar[str]
    generator: ClassVar[str]

    def __init__(
        self,
        data_dir: str = "data/shapes",
        train_images: int = 300,
        val_images: int = 60,
        test_images: int = 60,
        image_size: int = 128,
        data_seed: int = 0,
        **loader: Any,
    ):
        self.counts = {"train": train_images, "val": val_images, "test": test_images}
        check_minimums(
            {
                **{f"{split}_images": (count, 1) for split, count in self.counts.items()},
                "image_size": (image_size, MIN_IMAGE_SIZE),
            }
        )
        self.generated_dir = Path(data_dir)
        self.data_seed, self.generated_size = data_seed, image_size
        super().__init__(image_size=image_size, **loader)

    def generate(self, folder: Path, images: int, seed: int, image_size: int) -> None:
        """Write one split of ``images`` images into ``folder``."""
        raise NotImplementedError(f"{type(self).__name__} must define generate")

    def prepare_data(self) -> None:
        """Write each split that is missing or was made with other counts, seed or size."""
        for split, count in self.counts.items():
            folder = self.generated_dir / split
            wanted = generator_info(
                self.generator, count, split_seed(self.data_seed, split), self.generated_size
            )
            if stored_info(folder / self.info_file) != wanted:
                self.generate(folder, count, wanted["seed"], self.generated_size)


def generator_info(generator: str, images: int, seed: int, image_size: int) -> dict[str, Any]:
    """The ``info`` block that says how a split was made (compared before reusing one)."""
    return {"description": generator, "images": images, "seed": seed, "image_size": image_size}


def stored_info(path: Path) -> dict[str, Any] | None:
    """The ``info`` block of the JSON at ``path``; None where it is missing or unreadable."""
    try:
        return json.loads(path.read_text()).get("info")
    except (OSError, ValueError, AttributeError):
        return None


def split_seed(seed: int, split: str) -> int:
    """Independent seeds per split, so train, val and test never share an image."""
    return int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])


def check_generator_arguments(name: str, images: int, image_size: int) -> None:
    """SpecError naming ``name`` (the generator function) unless images >= 1 and the size fits."""
    if images < 1 or image_size < MIN_IMAGE_SIZE:
        raise SpecError(
            f"{name}: need images >= 1 and image_size >= {MIN_IMAGE_SIZE}, got "
            f"{images} and {image_size}"
        )
