"""YOLO-format datasets (Ultralytics layout, e.g. coco8 and coco8-seg) read into the COCO contract.

    data: {name: yolo_detection, args: {dataset_yaml: ../shared/data/detection/coco8/coco8.yaml}}

The dataset YAML gives ``path`` (root; empty or relative: from the YAML's folder), ``train``,
``val`` and optional ``test`` (an image folder, a ``.txt`` list of images, or a list of those)
and ``names`` (``{index: name}`` or a list). Each image ``.../images/x.jpg`` has its labels in
``.../labels/x.txt``, one object per line, coordinates as fractions of the image size:

    class cx cy w h               a box
    class x1 y1 x2 y2 x3 y3 ...   a polygon (segmentation datasets); its box is its extent

A missing label file means an image without objects; with ``masks: true`` a box line gives a
rectangular mask. A box wholly outside ``[0, 1]`` is a ``DataError``; one partly outside is
clipped to the image, as COCO's tools do. Labels are the YOLO class indices, which
are also the category ids. Image ids are the file names' numbers when every name is a number
(COCO-derived sets keep their COCO ids), else positions in the sorted list (from 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionflow.batches import DetectionBatch
from visionflow.datamodules.detection_base import DetectionDataModule, DetectionRecord, LabelMap
from visionflow.errors import DataError
from visionflow.registry import DATAMODULES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LINE_HINT = (
    "each line is 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...' with fractions in [0, 1]"
)


@DATAMODULES.register("yolo_detection", batch=DetectionBatch)
class YoloDetectionDataModule(DetectionDataModule):
    """YOLO txt labels + dataset YAML (boxes, or polygons as masks), as COCO-style targets."""

    def __init__(
        self,
        dataset_yaml: str,
        masks: bool = False,
        **loader: Any,
    ):
        super().__init__(masks, False, **loader)  # YOLO labels hold no keypoints
        self.dataset_yaml = Path(dataset_yaml)
        self.config = read_dataset_yaml(self.dataset_yaml)

    @property
    def root(self) -> Path:
        path = self.config.get("path") or ""
        return (self.dataset_yaml.parent / path).resolve()

    def load_split(self, split: str) -> tuple[list[DetectionRecord], LabelMap] | None:
        entry = self.config.get(split)
        if not entry:
            return None
        label_map = names_label_map(self.config.get("names"), self.dataset_yaml)
        images = list_images(entry, self.root, self.dataset_yaml)
        ids = image_ids(images)
        records = [
            read_label_file(image, image_id, len(label_map), self.masks)
            for image, image_id in zip(images, ids)
        ]
        return records, label_map


def read_dataset_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no such dataset YAML") from None
    except yaml.YAMLError as error:
        raise DataError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(config, dict) or "names" not in config:
        raise DataError(
            f"{path}: a YOLO dataset YAML needs 'names' and the splits",
            hint="e.g. path: ., train: images/train, val: images/val, names: {0: cat}",
        )
    return config


def names_label_map(names: Any, source: Path) -> LabelMap:
    """``names`` as ``{index: name}`` or a list; indices must be 0..K-1."""
    pairs = dict(enumerate(names)) if isinstance(names, list) else dict(names or {})
    if sorted(pairs) != list(range(len(pairs))) or not pairs:
        raise DataError(
            f"{source}: 'names' must map the class indices 0..K-1 to names, "
            f"got keys {sorted(pairs)[:5]}"
        )
    return LabelMap(tuple(range(len(pairs))), tuple(str(pairs[i]) for i in range(len(pairs))))


def list_images(entry: str | list[str], root: Path, source: Path) -> list[Path]:
    """The images of a split entry: folders (searched recursively), ``.txt`` lists, or a list."""
    images: list[Path] = []
    for item in entry if isinstance(entry, list) else [entry]:
        path = root / item
        if path.is_dir():
            images += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.suffix == ".txt" and path.is_file():
            images += [
                (path.parent / line.strip()).resolve()
                for line in path.read_text().splitlines()
                if line.strip()
            ]
        else:
            raise DataError(
                f"{source}: split entry {item!r} ({path}) is neither a folder nor a "
                ".txt list of images"
            )
    return images


def image_ids(images: list[Path]) -> list[int]:
    stems = [p.stem for p in images]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(images) + 1))


def label_path(image: Path) -> Path:
    """``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (the last ``images`` folder)."""
    parts = list(image.parts)
    if "images" not in parts:
        return image.with_suffix(".txt")
    parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    return Path(*parts).with_suffix(".txt")


def read_label_file(image: Path, image_id: int, num_classes: int, masks: bool) -> DetectionRecord:
    """The record of one image; a bad line is a DataError naming the file, line and image id."""
    path = label_path(image)
    rows = (
        []
        if not path.is_file()
        else [
            (number, line.split())
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip()
        ]
    )
    boxes, labels, polygons, lines = [], [], [], []
    for number, values in rows:
        label, box, polygon = parse_line(
            values, num_classes, f"{path}:{number} (image id {image_id})"
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        boxes.append(box)
        labels.append(label)
        polygons.append([polygon])
        lines.append(number)
    record = DetectionRecord(
        image_path=image,
        image_id=image_id,
        source=str(path),
        normalized=True,
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.array(labels, dtype=np.int64),
        iscrowd=np.zeros(len(labels), dtype=bool),
        annotation_ids=np.array(lines, dtype=np.int64),
        segmentations=tuple(polygons) if masks else None,
    )
    record.check_inside(1.0, 1.0)  # fractions: a box beyond [0, 1] on a side is off the image
    return record


def parse_line(
    values: list[str], num_classes: int, where: str
) -> tuple[int, list[float], list[float]]:
    """``(class, box [x1, y1, x2, y2], polygon [x1, y1, ...])`` in fractions of the image size."""
    try:
        label, numbers = int(values[0]), [float(v) for v in values[1:]]
    except ValueError:
        raise DataError(f"{where}: not numbers: {' '.join(values)!r}", hint=LINE_HINT) from None
    if not 0 <= label < num_classes:
        raise DataError(f"{where}: class {label} is not in 0..{num_classes - 1}", hint=LINE_HINT)
    if len(numbers) == 4:
        cx, cy, w, h = numbers
        if w < 0 or h < 0:
            raise DataError(f"{where}: negative width or height", hint=LINE_HINT)
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        polygon = [box[0], box[1], box[2], box[1], box[2], box[3], box[0], box[3]]
        return label, box, polygon
    if len(numbers) < 6 or len(numbers) % 2:
        raise DataError(
            f"{where}: {len(numbers)} coordinates; expected 4 (a box) or an even "
            "number of at least 6 (a polygon)",
            hint=LINE_HINT,
        )
    xs, ys = numbers[0::2], numbers[1::2]
    return label, [min(xs), min(ys), max(xs), max(ys)], numbers
