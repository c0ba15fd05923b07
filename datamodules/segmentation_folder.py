"""Label maps stored as PNG files: a folder layout and Pascal VOC.

    data: {name: segmentation_folder, args: {root: /data/roads, class_names: [road, car, other]}}
    data: {name: voc_segmentation, args: {root: /data/VOCdevkit/VOC2012}}

``segmentation_folder``: ``<root>/<split>/images/*.jpg|png`` and ``<root>/<split>/masks/<same
stem>.png`` for each configured split folder (``train``, ``val``, optional ``test``). VOC:
``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNG: the palette index is the
class, 255 = ignore, the object borders) and the ids in ``ImageSets/Segmentation/<set>.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionflow.batches import SegmentationBatch
from visionflow.datamodules.segmentation_base import PngMaskRecord, SegmentationDataModule
from visionflow.datamodules.voc_detection import VOC_CLASSES
from visionflow.errors import DataError, SpecError
from visionflow.registry import DATAMODULES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VOC_SEGMENTATION_CLASSES = ("background", *VOC_CLASSES)  # label 0, then the 20 VOC classes


def distinct_names(class_names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(class_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise SpecError(f"class_names: expected at least 2 distinct names, got {list(names)}")
    return names


@DATAMODULES.register("segmentation_folder", batch=SegmentationBatch)
class SegmentationFolderDataModule(SegmentationDataModule):
    """``<split>/images/`` and ``<split>/masks/`` (PNG label maps of matching names)."""

    def __init__(
        self,
        root: str,
        class_names: list[str],
        train: str | None = "train",
        val: str | None = "val",
        test: str | None = None,
        image_size: int | list[int] = 256,
        **loader: Any,
    ):
        super().__init__(image_size=image_size, **loader)
        self.root = Path(root)
        self.names = distinct_names(class_names)
        self.folders = {"train": train, "val": val, "test": test}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.names

    def load_split(self, split: str) -> list[PngMaskRecord] | None:
        if self.folders[split] is None:
            return None
        folder = self.root / self.folders[split]
        if not (folder / "images").is_dir():
            raise DataError(
                f"{folder / 'images'}: no such folder",
                hint=f"the {split} split needs images/ and masks/ folders",
            )
        images = sorted(
            p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        return [
            PngMaskRecord(
                image_path=p, source=str(folder), mask_path=folder / "masks" / f"{p.stem}.png"
            )
            for p in images
        ]


@DATAMODULES.register("voc_segmentation", batch=SegmentationBatch)
class VOCSegmentationDataModule(SegmentationDataModule):
    """Pascal VOC segmentation: JPEGs and palette PNG masks (255 = ignore), 21 classes."""

    def __init__(
        self,
        root: str,
        train_set: str | None = "train",
        val_set: str | None = "val",
        test_set: str | None = None,
        class_names: list[str] | None = None,
        image_size: int | list[int] = 320,
        **loader: Any,
    ):
        super().__init__(image_size=image_size, **loader)
        self.root = Path(root)
        self.names = distinct_names(class_names or VOC_SEGMENTATION_CLASSES)
        self.sets = {"train": train_set, "val": val_set, "test": test_set}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.names

    def load_split(self, split: str) -> list[PngMaskRecord] | None:
        name = self.sets[split]
        if name is None:
            return None
        set_file = self.root / "ImageSets" / "Segmentation" / f"{name}.txt"
        try:
            ids = [line.split()[0] for line in set_file.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            raise DataError(
                f"{set_file}: image set file is missing",
                hint=f"root should be a VOC folder (VOCdevkit/VOC2012); {split}_set "
                "names a file in ImageSets/Segmentation",
            ) from None
        return [
            PngMaskRecord(
                image_path=self.root / "JPEGImages" / f"{i}.jpg",
                source=str(set_file),
                mask_path=self.root / "SegmentationClass" / f"{i}.png",
            )
            for i in ids
        ]
