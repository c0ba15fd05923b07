"""COCO panoptic data (PNG + segments JSON) as ``PanopticBatch`` es, and the panoptic shapes.

    data: {name: coco_panoptic, args: {root: /data/coco, image_size: 512,
           annotations: {train: annotations/panoptic_train2017.json, val: ...},
           images: {train: train2017, val: val2017},
           panoptic_masks: {train: annotations/panoptic_train2017, val: ...}}}

Every category is a contiguous label (ascending id order); ``thing_classes`` says which are
things (``isthing``). Each image's segments are renumbered 1..N in id order (0 void) and travel
through the mask-aware ``segmentation_*`` presets as one uint8 map (nearest resampling), so an
image has at most 254 segments; a segment cropped away keeps its label and an empty mask. A PNG
segment id missing from the JSON is a DataError naming the PNG (``read_segment_ids``).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionflow.batches import IGNORE_INDEX, PanopticBatch, PanopticDatasetInfo, PanopticTarget
from visionflow.datamodules.detection_samples import LabelMap, decode_image
from visionflow.datamodules.generated_splits import SPLITS, GeneratedImages
from visionflow.datamodules.panoptic_shapes import GENERATOR, make_panoptic_shapes_dataset
from visionflow.datamodules.segmentation_base import SegmentationDataModule, SegmentationDataset
from visionflow.datamodules.segmentation_coco import PanopticMaskRecord, read_panoptic
from visionflow.errors import DataError, SpecError
from visionflow.registry import DATAMODULES


class PanopticDataset(SegmentationDataset):
    """One ``(image float32 [3, H, W], PanopticTarget)`` per record (image id: position + 1)."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, PanopticTarget]:
        seed = self.seeding.new_seed()
        if seed is not None:
            self.transform.set_random_seed(seed)
        record: PanopticMaskRecord = self.records[index]
        pixels = decode_image(record)  # uint8 [H, W, 3]
        ids = record.read_segment_ids()  # uint32 [H, W]
        if ids.shape != pixels.shape[:2]:
            raise DataError(
                f"{record.png_path}: panoptic PNG is {ids.shape[1]}x{ids.shape[0]} but its image "
                f"{record.image_path} is {pixels.shape[1]}x{pixels.shape[0]} (width x height)"
            )
        present = np.unique(ids[ids > 0])
        if len(present) >= IGNORE_INDEX:
            raise DataError(f"{record.png_path}: {len(present)} segments, at most 254 per image")
        compact = np.searchsorted(np.concatenate([[0], present]), ids).astype(np.uint8)
        out = self.transform(image=pixels, mask=compact)
        segments = torch.from_numpy(np.asarray(out["mask"], dtype=np.int64))
        segments[segments == IGNORE_INDEX] = 0  # padding added by the preset
        labels = dict(record.segment_labels)
        image = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))).float()
        return image, PanopticTarget(
            segments, torch.tensor([labels[int(i)] for i in present], dtype=torch.int64), index + 1
        )


def collate_panoptic(samples: list[tuple[torch.Tensor, PanopticTarget]]) -> PanopticBatch:
    return PanopticBatch(
        images=torch.stack([image for image, _ in samples]),
        targets=[target for _, target in samples],
    )


class PanopticDataModule(SegmentationDataModule):
    """Base of the panoptic datamodules: per split a COCO panoptic JSON (``annotations``), an
    image folder (``images``) and a PNG folder (``panoptic_masks``), relative to ``root``, which
    the subclass sets; a split left out of ``annotations`` is not configured."""

    dataset_type = PanopticDataset
    collate = staticmethod(collate_panoptic)
    root: Path
    annotations: dict[str, str]
    images: dict[str, str]
    panoptic_masks: dict[str, str]

    def load_split(self, split: str) -> list[PanopticMaskRecord] | None:
        if split not in self.annotations:
            return None
        return self._read(split)[0]

    def _read(self, split: str) -> tuple[list[PanopticMaskRecord], LabelMap]:
        return read_panoptic(
            self.root / self.annotations[split],
            self.root / self.images[split],
            self.root / self.panoptic_masks[split],
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.label_map.names

    @property
    def label_map(self) -> LabelMap:
        return LabelMap.from_categories(self.categories, str(self.categories_path))

    @property
    def categories_path(self) -> Path:
        return self.root / next(iter(self.annotations.values()))

    @cached_property
    def categories(self) -> list[dict[str, Any]]:
        """COCO ``categories`` of the first configured split's JSON (read once)."""
        from visionflow.evaluation.coco_io import read_json

        dataset = read_json(self.categories_path, "ground truth")
        if not isinstance(dataset, dict) or "categories" not in dataset:
            raise DataError(f"{self.categories_path}: not a COCO panoptic file (no 'categories')")
        return dataset["categories"]

    @property
    def info(self) -> PanopticDatasetInfo:
        isthing = {c["id"]: bool(c.get("isthing", 1)) for c in self.categories}
        labels = self.label_map
        return PanopticDatasetInfo(
            num_classes=len(labels),
            class_names=labels.names,
            in_channels=3,
            image_size=self.eval_image_size,
            thing_classes=tuple(isthing[i] for i in labels.category_ids),
            category_ids=labels.category_ids,
        )


@DATAMODULES.register("coco_panoptic", batch=PanopticBatch)
class CocoPanopticDataModule(PanopticDataModule):
    """COCO panoptic data (see the module docstring): per split a JSON, an image folder and a
    PNG folder, relative to ``root``."""

    def __init__(
        self,
        root: str,
        annotations: dict[str, str],
        images: dict[str, str],
        panoptic_masks: dict[str, str],
        image_size: int | list[int] = 512,
        **loader: Any,
    ):
        super().__init__(image_size=image_size, **loader)
        for name, table in (("images", images), ("panoptic_masks", panoptic_masks)):
            missing = sorted(set(annotations) - set(table))
            if missing:
                raise SpecError(f"{name}: no folder for split {missing[0]!r}")
        unknown = sorted(set(annotations) - set(SPLITS))
        if unknown or not annotations:
            raise SpecError(f"annotations: keys are {', '.join(SPLITS)}, got {sorted(annotations)}")
        self.root = Path(root)
        self.annotations, self.images, self.panoptic_masks = annotations, images, panoptic_masks


@DATAMODULES.register("shapes_panoptic", batch=PanopticBatch)
class ShapesPanopticDataModule(GeneratedImages, PanopticDataModule):
    """Procedural circles, squares and triangles (things) over sky and ground (stuff), made on
    first use in ``data_dir`` (``datamodules/panoptic_shapes.py``)."""

    info_file = "panoptic.json"
    generator = GENERATOR
    generate = staticmethod(make_panoptic_shapes_dataset)

    def __init__(self, data_dir: str = "data/shapes_panoptic", **generator_and_loader: Any):
        super().__init__(data_dir, **generator_and_loader)
        self.root = self.generated_dir
        self.annotations, self.images, self.panoptic_masks = (
            {split: f"{split}/{name}" for split in SPLITS}
            for name in (self.info_file, "images", "panoptic")
        )
