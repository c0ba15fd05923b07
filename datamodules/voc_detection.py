"""Pascal VOC layout: ``Annotations/*.xml``, ``JPEGImages/*.jpg``, ``ImageSets/Main/<set>.txt``.

    data: {name: voc_detection, args: {root: /data/VOCdevkit/VOC2012, val_set: val}}

Boxes in the XML are 1-based inclusive pixel indices; they become continuous XYXY pixels
``(xmin - 1, ymin - 1, xmax, ymax)``. ``difficult`` objects are kept as crowd regions
(``iscrowd=True``): not trained on, and ignored by the evaluation, as in the VOC devkit.
Labels follow ``class_names`` (default: the 20 VOC classes); category ids are labels + 1.
A box wholly outside the image (``<size>``, else the decoded image) is a ``DataError``; one
partly outside is clipped to the image, as COCO's tools do.
Image ids are line numbers in the set file (from 1); "annotation ids" in error messages are
the objects' positions in their XML file (from 1).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from visionflow.batches import DetectionBatch
from visionflow.datamodules.detection_base import DetectionDataModule, DetectionRecord, LabelMap
from visionflow.datamodules.voc import VOC_CLASSES, VocImageSets
from visionflow.errors import DataError
from visionflow.registry import DATAMODULES

XML_HINT = (
    "<object><name>cls</name><difficult>0</difficult><bndbox><xmin>..</xmin><ymin>.."
    "</ymin><xmax>..</xmax><ymax>..</ymax></bndbox></object>"
)


class BoxesOnlyDataModule(DetectionDataModule):
    """A detection datamodule that reads boxes only: no masks, no keypoints."""

    def __init__(self, **loader: Any):
        super().__init__(False, False, **loader)


@DATAMODULES.register("voc_detection", batch=DetectionBatch)
class VOCDetectionDataModule(VocImageSets, BoxesOnlyDataModule):
    """Pascal VOC XML annotations (or any dataset in that layout, with its own class names)."""

    image_sets = "Main"
    default_class_names = VOC_CLASSES

    @property
    def voc_label_map(self) -> LabelMap:
        return LabelMap(tuple(range(1, len(self.names) + 1)), self.names)

    def load_split(self, split: str) -> tuple[list[DetectionRecord], LabelMap] | None:
        found = self.image_ids(split)
        if found is None:
            return None
        ids = found[1]
        labels = {name: label for label, name in enumerate(self.voc_label_map.names)}
        return [
            read_voc_xml(self.root, voc_id, image_id, labels)
            for image_id, voc_id in enumerate(ids, 1)
        ], self.voc_label_map


def read_voc_xml(root: Path, voc_id: str, image_id: int, labels: dict[str, int]) -> DetectionRecord:
    """The record of ``Annotations/<voc_id>.xml``; problems name the file, image id and object."""
    path = root / "Annotations" / f"{voc_id}.xml"
    try:
        tree = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file is missing (image id {image_id})") from None
    except ET.ParseError as error:
        raise DataError(f"{path}: malformed XML (image id {image_id}): {error}") from None
    objects = [
        parse_object(node, labels, f"{path} (image id {image_id}, object #{number})")
        for number, node in enumerate(tree.findall("object"), 1)
    ]
    file_name = tree.findtext("filename") or f"{voc_id}.jpg"
    record = DetectionRecord(
        image_path=root / "JPEGImages" / file_name,
        image_id=image_id,
        source=str(path),
        boxes=np.array([box for _, box, _ in objects], dtype=np.float32).reshape(-1, 4),
        labels=np.array([label for label, _, _ in objects], dtype=np.int64),
        iscrowd=np.array([difficult for _, _, difficult in objects], dtype=bool),
        annotation_ids=np.arange(1, len(objects) + 1),
        size=image_size(tree),
    )
    if record.size is not None:  # else the dataset checks it against the decoded image
        record.check_inside(*record.size)
    return record


def parse_object(
    node: ET.Element, labels: dict[str, int], where: str
) -> tuple[int, list[float], bool]:
    """``(label, box [x1, y1, x2, y2], difficult)`` of one ``<object>``."""
    name = (node.findtext("name") or "").strip()
    if not name:
        raise DataError(f"{where}: has no <name>", hint=XML_HINT)
    if name not in labels:
        raise DataError(
            f"{where}: unknown class {name!r}", hint="set class_names to this dataset's classes"
        )
    box = node.find("bndbox")
    try:
        xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (AttributeError, TypeError, ValueError):
        raise DataError(f"{where}: missing or non-numeric <bndbox>", hint=XML_HINT) from None
    if xmax < xmin or ymax < ymin:
        raise DataError(f"{where}: <bndbox> has xmax < xmin or ymax < ymin", hint=XML_HINT)
    difficult = (node.findtext("difficult") or "0").strip() == "1"
    return labels[name], [xmin - 1, ymin - 1, xmax, ymax], difficult


def image_size(tree: ET.Element) -> tuple[int, int] | None:
    """``(H, W)`` from ``<size>``, or None when the XML does not give it (or gives zeros)."""
    try:
        size = int(tree.findtext("size/height")), int(tree.findtext("size/width"))
    except (TypeError, ValueError):
        return None
    return size if all(size) else None
