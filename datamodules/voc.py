"""The Pascal VOC layout that ``voc_detection`` and ``voc_segmentation`` share: ``root`` (a
``VOCdevkit/VOC2012`` folder), an image set per split (``ImageSets/<kind>/<set>.txt``, one image
id a line) and the class names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from visionflow.errors import DataError, SpecError

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


class VocImageSets:
    """Base (first in the bases) of the VOC datamodules: declares and keeps ``root``, the image
    set of each split (None: the split is not configured) and ``class_names`` (default
    ``default_class_names``, at least ``least_classes`` distinct), and forwards the other
    arguments up the bases, where the spec checker finds them too. ``image_sets`` names the
    folder of ``ImageSets`` that the sets are read from."""

    image_sets: ClassVar[str]
    default_class_names: ClassVar[tuple[str, ...]]
    least_classes: ClassVar[int] = 1

    def __init__(
        self,
        root: str,
        train_set: str | None = "train",
        val_set: str | None = "val",
        test_set: str | None = None,
        class_names: list[str] | None = None,
        **rest: Any,
    ):
        self.root = Path(root)
        self.sets = {"train": train_set, "val": val_set, "test": test_set}
        self.names = distinct_names(class_names or self.default_class_names, self.least_classes)
        super().__init__(**rest)

    def image_ids(self, split: str) -> tuple[Path, list[str]] | None:
        """``(set file, the image ids it lists)`` of ``split``; None where it has no set."""
        name = self.sets[split]
        if name is None:
            return None
        set_file = self.root / "ImageSets" / self.image_sets / f"{name}.txt"
        try:
            lines = set_file.read_text().splitlines()
        except FileNotFoundError:
            raise DataError(
                f"{set_file}: image set file is missing",
                hint=f"root should be a VOC folder (VOCdevkit/VOC2012); {split}_set "
                f"names a file in ImageSets/{self.image_sets}",
            ) from None
        return set_file, [line.split()[0] for line in lines if line.strip()]


def distinct_names(class_names: list[str] | tuple[str, ...], least: int) -> tuple[str, ...]:
    """``class_names`` as a tuple; SpecError unless they are ``least`` or more, all distinct."""
    names = tuple(class_names)
    if len(names) < least or len(set(names)) != len(names):
        raise SpecError(f"class_names: expected at least {least} distinct names, got {list(names)}")
    return names
