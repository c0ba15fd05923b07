"""Semantic segmentation from instance annotations (COCO, YOLO polygons, generated shapes) and
from COCO panoptic PNGs.

    data: {name: coco_segmentation, args: {root: /data/coco, image_size: 512,
           train_annotations: annotations/instances_train2017.json,
           val_annotations: annotations/instances_val2017.json,
           images: {train: train2017, val: val2017}}}

From instances, label 0 is ``background`` (no annotation) and category ``i`` (ascending id
order) is label ``i + 1``; crowd regions and pixels where two objects of different classes
overlap are ``IGNORE_INDEX``. With ``panoptic_masks`` (a folder of COCO panoptic PNGs, or one
per split) the annotation files are COCO panoptic JSON: every category is a label (ascending id
order, things and stuff alike), void pixels (segment id 0) are ``IGNORE_INDEX``, and a PNG
segment id that its ``segments_info`` does not list is a DataError naming the PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.batches import IGNORE_INDEX, SegmentationBatch
from visionflow.datamodules.coco_detection import CocoDetectionDataModule, CocoFiles
from visionflow.datamodules.detection_base import DetectionDataModule
from visionflow.datamodules.detection_samples import DetectionRecord, LabelMap, decode_masks
from visionflow.datamodules.generated_splits import SPLITS
from visionflow.datamodules.segmentation_base import SegmentationDataModule, SegmentationRecord
from visionflow.datamodules.shapes import ShapesSplits, coco_files
from visionflow.datamodules.yolo_detection import YoloDetectionDataModule
from visionflow.errors import DataError
from visionflow.registry import DATAMODULES


@dataclass(frozen=True)
class InstanceMaskRecord(SegmentationRecord):
    """A label map painted from an image's instance annotations (see the module docstring)."""

    instances: DetectionRecord

    def read_mask(self, height: int, width: int) -> np.ndarray:
        return semantic_from_instances(self.instances.in_pixels(height, width), height, width)


def semantic_from_instances(record: DetectionRecord, height: int, width: int) -> np.ndarray:
    """uint8 [H, W]: 0 background, label + 1 on each object, IGNORE_INDEX on crowds and on
    pixels two objects of different classes share."""
    labels = np.zeros((height, width), dtype=np.uint8)
    if not record.segmentations:
        return labels
    masks = decode_masks(record, height, width).astype(bool)  # [N, H, W]
    crowd = np.asarray(record.iscrowd, dtype=bool)
    objects, classes = masks[~crowd], np.asarray(record.labels)[~crowd] + 1
    painted = (objects * classes[:, None, None]).max(axis=0, initial=0)
    lowest = np.where(objects, classes[:, None, None], IGNORE_INDEX).min(
        axis=0, initial=IGNORE_INDEX
    )
    labels[:] = painted
    labels[objects.any(axis=0) & (painted != lowest)] = IGNORE_INDEX
    labels[masks[crowd].any(axis=0)] = IGNORE_INDEX
    return labels


@dataclass(frozen=True)
class PanopticMaskRecord(SegmentationRecord):
    """A label map from a COCO panoptic PNG (segment id = R + 256 G + 256^2 B) and the labels of
    its segments ``((segment id, label), ...)``."""

    png_path: Path
    segment_labels: tuple[tuple[int, int], ...]

    @property
    def mask_path(self) -> Path:
        return self.png_path

    def read_mask(self, height: int, width: int) -> np.ndarray:
        ids = self.read_segment_ids()
        known = dict(self.segment_labels)
        present = [int(i) for i in np.unique(ids) if i != 0]
        lookup = {0: IGNORE_INDEX, **{i: known[i] for i in present}}
        keys = np.array(sorted(lookup), dtype=np.uint32)
        values = np.array([lookup[k] for k in keys.tolist()], dtype=np.uint8)
        return values[np.searchsorted(keys, ids)]

    def read_segment_ids(self) -> np.ndarray:
        """Segment ids uint32 [H, W] of the PNG (0 void); DataError for an id not in the JSON."""
        from PIL import Image

        try:
            with Image.open(self.png_path) as image:
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint32)
        except FileNotFoundError:
            raise DataError(f"{self.png_path}: panoptic PNG is missing ({self.where()})") from None
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        known = dict(self.segment_labels)
        present = [int(i) for i in np.unique(ids) if i != 0]
        missing = [i for i in present if i not in known]
        if missing:
            raise DataError(
                f"{self.png_path}: segment id(s) {missing[:5]} are not in the "
                f"segments_info of {self.source}",
                hint="the PNG and the panoptic JSON must come from the same export",
            )
        return ids


def read_panoptic(
    path: Path, image_dir: Path, png_dir: Path
) -> tuple[list[PanopticMaskRecord], LabelMap]:
    """Records (sorted by image id) and label map of a COCO panoptic JSON."""
    from visionflow.evaluation.coco_io import read_json

    dataset = read_json(path, "ground truth")
    if not isinstance(dataset, dict) or not all(
        k in dataset for k in ("images", "annotations", "categories")
    ):
        raise DataError(
            f"{path}: not a COCO panoptic file (needs 'images', 'annotations' "
            f"with segments_info, and 'categories')"
        )
    label_map = LabelMap.from_categories(dataset["categories"], str(path))
    files = {image["id"]: image["file_name"] for image in dataset["images"]}
    records = []
    for annotation in sorted(dataset["annotations"], key=lambda a: a["image_id"]):
        segments = annotation.get("segments_info", [])
        labels, found = label_map.labels(np.array([s["category_id"] for s in segments], np.int64))
        if not found.all():
            raise DataError(
                f"{path}: image id {annotation['image_id']}: category_id "
                f"{segments[int(np.argmin(found))]['category_id']} is not in 'categories'"
            )
        if annotation["image_id"] not in files:
            raise DataError(f"{path}: image id {annotation['image_id']} is not in 'images'")
        records.append(
            PanopticMaskRecord(
                image_path=image_dir / files[annotation["image_id"]],
                source=str(path),
                png_path=png_dir / annotation["file_name"],
                segment_labels=tuple(
                    (int(s["id"]), int(label)) for s, label in zip(segments, labels)
                ),
            )
        )
    return records, label_map


class InstancesSegmentationDataModule(SegmentationDataModule):
    """Semantic masks painted from the instance annotations of a detection datamodule
    (``self.instances``, built with masks by the subclass): background + its classes."""

    instances: DetectionDataModule

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("background", *self.instances.label_map.names)

    def load_split(self, split: str) -> list[SegmentationRecord] | None:
        records = self.instances.records(split)
        if records is None:
            return None
        return [
            InstanceMaskRecord(image_path=r.image_path, source=r.source, instances=r)
            for r in records
        ]


def instance_reader(
    reader: type[DetectionDataModule], *args: Any, **files: Any
) -> DetectionDataModule:
    """``reader(*args, **files)`` as the source of an ``InstancesSegmentationDataModule``: with
    masks, every image kept (an image without objects is all background)."""
    return reader(*args, **files, masks=True, drop_empty_images=False)


@DATAMODULES.register("coco_segmentation", batch=SegmentationBatch)
class CocoSegmentationDataModule(CocoFiles, InstancesSegmentationDataModule):
    """COCO instances (masks painted by category) or COCO panoptic PNG + JSON, as label maps."""

    def __init__(
        self,
        root: str,
        *,
        panoptic_masks: str | dict[str, str] | None = None,
        image_size: int | list[int] = 512,
        **files_and_loader: Any,
    ):
        super().__init__(root, image_size=image_size, **files_and_loader)
        self.instances = instance_reader(
            CocoDetectionDataModule,
            root=str(self.root),
            images=self.images,
            **{f"{split}_annotations": path for split, path in self.annotations.items()},
        )
        self.panoptic_masks = panoptic_masks
        self._panoptic: dict[str, tuple[list[PanopticMaskRecord], LabelMap] | None] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.panoptic_masks is None:
            return super().class_names
        for split in SPLITS:
            loaded = self._panoptic_split(split)
            if loaded is not None:
                return loaded[1].names
        raise DataError("no split is configured", hint="give at least one split's annotations")

    def load_split(self, split: str) -> list[SegmentationRecord] | None:
        if self.panoptic_masks is None:
            return super().load_split(split)
        loaded = self._panoptic_split(split)
        return None if loaded is None else loaded[0]

    def _panoptic_split(self, split: str) -> tuple[list[PanopticMaskRecord], LabelMap] | None:
        if split not in self._panoptic:
            relative = self.annotations[split]
            folder = (
                self.panoptic_masks
                if isinstance(self.panoptic_masks, str)
                else self.panoptic_masks.get(split, self.panoptic_masks.get("val", ""))
            )
            self._panoptic[split] = (
                None
                if relative is None
                else read_panoptic(self.root / relative, self.image_dir(split), self.root / folder)
            )
        return self._panoptic[split]


@DATAMODULES.register("yolo_segmentation", batch=SegmentationBatch)
class YoloSegmentationDataModule(InstancesSegmentationDataModule):
    """YOLO segmentation labels (polygons) + dataset YAML, painted into label maps."""

    def __init__(
        self,
        dataset_yaml: str,
        image_size: int | list[int] = 320,
        **loader: Any,
    ):
        super().__init__(image_size=image_size, **loader)
        self.instances = instance_reader(YoloDetectionDataModule, dataset_yaml)


@DATAMODULES.register("shapes_segmentation", batch=SegmentationBatch)
class ShapesSegmentationDataModule(ShapesSplits, InstancesSegmentationDataModule):
    """Procedural circles, squares and triangles (made on first use) as label maps: background,
    circle, square, triangle."""

    @cached_property
    def instances(self) -> DetectionDataModule:
        return instance_reader(CocoDetectionDataModule, **coco_files(self.generated_dir))
