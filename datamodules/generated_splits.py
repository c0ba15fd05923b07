"""Datamodules whose data a generator writes on first use: the split folders, once.

``GeneratedSplits`` is the base (first in the bases, before the datamodule class it feeds) of
every datamodule whose generator writes one folder per split (``data_dir/train``, ``val``,
``test``): it holds ``data_dir``, the count per split and ``data_seed``, checks the counts, and
on ``prepare_data`` writes each split folder that is missing or was made with other settings
(the ``info`` a split stores, :meth:`~GeneratedSplits.stored_info`, differs from the one wanted,
:meth:`~GeneratedSplits.wanted_info`). A subclass declares its generator's arguments (the spec
keys) and passes them on positionally, so the spec checker, which follows ``**kwargs`` up the
bases, shows the subclass's keys and the loader's as one list.

``GeneratedImages`` declares the 2D shapes generators' arguments (``train_images``,
``val_images``, ``test_images``, ``image_size``) for ``shapes_detection`` and its
instance/keypoint variants, ``shapes_segmentation`` and ``shapes_panoptic``; Shapes3D
(``datamodules/shapes3d.py``) declares its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from visionflow.errors import SpecError, check_minimums

SPLITS = ("train", "val", "test")
MIN_IMAGE_SIZE = 32
#: the largest image a dataset generator draws (its float64 noise [S, S, 3] is then 400 MB)
MAX_GENERATED_SIZE = 4096


class GeneratedSplits:
    """Base of a datamodule whose generator writes ``data_dir/<split>`` for each of ``SPLITS``.

    ``counts`` is ``{split: items}`` (each checked >= 1 under the key ``<split>_<count_unit>``);
    ``minimums`` is ``{key: (value, least)}`` for the subclass's other generator arguments,
    checked with the counts. A subclass names the file each split folder stores its ``info`` in
    (``info_file``) and defines :meth:`wanted_info` and :meth:`write_split`."""

    info_file: ClassVar[str]
    #: the info files of every generator, each removed before a split is rewritten: two
    #: generators pointed at one ``data_dir`` write the same image names, and each would
    #: otherwise trust its own info over the other's images
    info_files: ClassVar[set[str]] = set()
    #: what a split counts (``images``, ``samples``): the count keys are ``<split>_<count_unit>``
    count_unit: ClassVar[str]

    def __init__(
        self,
        data_dir: str,
        counts: dict[str, int],
        data_seed: int,
        minimums: dict[str, tuple[float, float]],
        /,
        **loader: Any,
    ):
        check_minimums(
            {
                **{f"{split}_{self.count_unit}": (count, 1) for split, count in counts.items()},
                **minimums,
            }
        )
        self.generated_dir, self.counts, self.data_seed = Path(data_dir), counts, data_seed
        super().__init__(**loader)

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if "info_file" in vars(cls):
            GeneratedSplits.info_files.add(cls.info_file)

    def wanted_info(self, split: str) -> dict[str, Any]:
        """The ``info`` that says how ``split`` is made with these arguments."""
        raise NotImplementedError(f"{type(self).__name__} must define wanted_info")

    def stored_info(self, folder: Path) -> dict[str, Any] | None:
        """The ``info`` the split in ``folder`` was made with; None where there is none."""
        return stored_info(folder / self.info_file)

    def write_split(self, folder: Path, wanted: dict[str, Any]) -> None:
        """Write the split that ``wanted`` (:meth:`wanted_info`) describes into ``folder``."""
        raise NotImplementedError(f"{type(self).__name__} must define write_split")

    def prepare_data(self) -> None:
        """Write each split that is missing or was made with other settings. The split's info
        files go first (a generator writes its own last), so a rewrite cut short is never taken
        for the split the old info describes, nor this split for another generator's."""
        for split in SPLITS:
            folder = self.generated_dir / split
            wanted = self.wanted_info(split)
            if self.stored_info(folder) != wanted:
                for name in GeneratedSplits.info_files:
                    (folder / name).unlink(missing_ok=True)
                self.write_split(folder, wanted)


class GeneratedImages(GeneratedSplits):
    """Base of a datamodule whose splits ``generate(folder, images, seed, image_size)`` writes,
    storing ``generator_info`` as the ``info`` of its ``info_file`` (a JSON file). A subclass
    names that file and the generator (``generator``, stored in the ``info``)."""

    count_unit = "images"
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
        counts = {"train": train_images, "val": val_images, "test": test_images}
        minimums = {"image_size": (image_size, MIN_IMAGE_SIZE)}
        super().__init__(data_dir, counts, data_seed, minimums, image_size=image_size, **loader)
        self.generated_size = image_size

    def generate(self, folder: Path, images: int, seed: int, image_size: int) -> None:
        """Write one split of ``images`` images into ``folder``."""
        raise NotImplementedError(f"{type(self).__name__} must define generate")

    def wanted_info(self, split: str) -> dict[str, Any]:
        seed = split_seed(self.data_seed, split)
        return generator_info(self.generator, self.counts[split], seed, self.generated_size)

    def write_split(self, folder: Path, wanted: dict[str, Any]) -> None:
        self.generate(folder, wanted["images"], wanted["seed"], wanted["image_size"])


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
    if images < 1 or not MIN_IMAGE_SIZE <= image_size <= MAX_GENERATED_SIZE:
        raise SpecError(
            f"{name}: need images >= 1 and {MIN_IMAGE_SIZE} <= image_size <= "
            f"{MAX_GENERATED_SIZE}, got {images} and {image_size}"
        )
