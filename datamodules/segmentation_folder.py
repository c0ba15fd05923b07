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
from visionflow.datamodules.voc import VOC_CLASSES, VocImageSets, distinct_names
from visionflow.errors import DataError
from visionflow.registry import DATAMODULES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VOC_SEGMENTATION_CLASSES = ("background", *VOC_CLASSES)  # label 0, then the 20 VOC classes


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
        self.names = distinct_names(class_names, least=2)
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
class VOCSegmentationDataModule(VocImageSets, SegmentationDataModule):
    """Pascal VOC segmentation: JPEGs and palette PNG masks (255 = ignore), 21 classes."""

    image_sets = "Segmentation"
    default_class_names = VOC_SEGMENTATION_CLASSES
    least_classes = 2

    def __init__(self, root: str, *, image_size: int | list[int] = 320, **sets_and_loader: Any):
        super().__init__(root, image_size=image_size, **sets_and_loader)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.names

    def load_split(self, split: str) -> list[PngMaskRecord] | None:
        found = self.image_ids(split)
        if found is None:
            return None
        set_file, ids = found
        return [
            PngMaskRecord(
                image_path=self.root / "JPEGImages" / f"{i}.jpg",
                source=str(set_file),
                mask_path=self.root / "SegmentationClass" / f"{i}.png",
            )
            for i in ids
        ]
