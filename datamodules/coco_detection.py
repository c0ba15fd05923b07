"""COCO instances (``instances_*.json``): boxes, crowd regions, and on request masks and keypoints.

    data:
      name: coco_detection
      args:
        root: /data/coco
        train_annotations: annotations/instances_train2017.json
        val_annotations: annotations/instances_val2017.json
        images: {train: train2017, val: val2017}      # or one folder for every split

Labels are the categories in ascending id order (see ``label_map`` to go back). Every problem in
the file is a ``DataError`` naming the file, the image id and the annotation id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionflow.batches import DetectionBatch, InstanceBatch, KeypointBatch
from visionflow.datamodules.detection_base import DetectionDataModule, DetectionRecord, LabelMap
from visionflow.errors import DataError, SpecError
from visionflow.registry import DATAMODULES

SPLITS = ("train", "val", "test")


class CocoFiles:
    """Base (first in the bases) of the datamodules that read COCO files: it declares and keeps
    where they lie (``root``; an annotation JSON per split, relative to it, None: the split is not
    configured; one image folder, or one per split), and forwards the other arguments up the
    bases, where the spec checker finds them too."""

    def __init__(
        self,
        root: str,
        train_annotations: str | None = None,
        val_annotations: str | None = None,
        test_annotations: str | None = None,
        images: str | dict[str, str] = "images",
        **rest: Any,
    ):
        self.root = Path(root)
        self.annotations = {
            "train": train_annotations,
            "val": val_annotations,
            "test": test_annotations,
        }
        if isinstance(images, dict):
            unknown = sorted(set(images) - set(SPLITS))
            if unknown:
                raise SpecError(
                    f"images.{unknown[0]}: unknown split", hint="splits are train, val and test"
                )
        self.images = images
        super().__init__(**rest)

    def image_dir(self, split: str) -> Path:
        folder = (
            self.images
            if isinstance(self.images, str)
            else self.images.get(split, self.images.get("val", "images"))
        )
        return self.root / folder


class DetectionContents(DetectionDataModule):
    """What a detection datamodule reads besides boxes, as keyword arguments (the base takes
    them positionally): ``masks`` and ``keypoints``."""

    def __init__(self, masks: bool = False, keypoints: bool = False, **loader: Any):
        super().__init__(masks, keypoints, **loader)


@DATAMODULES.register("coco_detection", batch=DetectionBatch)
class CocoDetectionDataModule(CocoFiles, DetectionContents):
    """COCO-format detection data (annotation JSON per split + image folders)."""

    def load_split(self, split: str) -> tuple[list[DetectionRecord], LabelMap] | None:
        relative = self.annotations[split]
        if relative is None:
            return None
        return read_coco_instances(
            self.root / relative, self.image_dir(split), masks=self.masks, keypoints=self.keypoints
        )


@DATAMODULES.register("coco_instances", batch=InstanceBatch)
class CocoInstancesDataModule(CocoDetectionDataModule):
    """COCO-format data with every object's mask (polygons or RLE), for instance segmentation:
    the same arguments as ``coco_detection``; masks are read whatever ``masks`` says."""

    batch_type = InstanceBatch


@DATAMODULES.register("coco_keypoints", batch=KeypointBatch)
class CocoKeypointsDataModule(CocoDetectionDataModule):
    """COCO-format data with every object's named keypoints (e.g. person_keypoints_*.json), for
    pose: the same arguments as ``coco_detection``; keypoints are read whatever ``keypoints``
    says, and flips swap the ``left_``/``right_`` ones."""

    batch_type = KeypointBatch


def read_coco_instances(
    path: Path, image_dir: Path, masks: bool = False, keypoints: bool = False
) -> tuple[list[DetectionRecord], LabelMap]:
    """Records (sorted by image id) and label map of a COCO instances file."""
    from visionflow.evaluation.coco_io import Records, read_json

    dataset = read_json(path, "ground truth")
    if not isinstance(dataset, dict) or not all(k in dataset for k in ("images", "categories")):
        raise DataError(f"{path}: not a COCO instances file (needs 'images' and 'categories')")
    label_map = LabelMap.from_categories(dataset["categories"], str(path))
    images = Records(str(path), "image", dataset["images"], "images are {id, file_name, ...}")
    annotations = Records(
        str(path),
        "annotation",
        dataset.get("annotations", []),
        "annotations are {id, image_id, category_id, bbox [x, y, w, h], ...}",
    )
    columns = annotation_columns(annotations, images, label_map, masks, keypoints)
    image_ids = images.integers("id")
    file_names = images.values("file_name")
    sizes = image_sizes(images)
    groups = group_by_image(columns.pop("image_id"), image_ids)
    return [
        DetectionRecord(
            image_path=image_dir / str(file_names[i]),
            image_id=int(image_ids[i]),
            source=str(path),
            size=sizes[i],
            **select(columns, groups[i]),
        )
        for i in np.argsort(image_ids, kind="stable")
    ], label_map


def image_sizes(images: Any) -> list[tuple[int, int] | None]:
    """(H, W) of every image, or None for each when the file does not give them all."""
    if not all(isinstance(i, dict) and "height" in i and "width" in i for i in images.items):
        return [None] * len(images.items)
    return [(int(h), int(w)) for h, w in zip(images.integers("height"), images.integers("width"))]


def annotation_columns(
    annotations: Any, images: Any, label_map: LabelMap, masks: bool, keypoints: bool
) -> dict[str, Any]:
    """Checked columns of every annotation with a non-empty box: boxes [A, 4] XYXY, labels,
    iscrowd, area, annotation ids, image ids, and (on request) segmentations and keypoints."""
    from visionflow.evaluation.coco_io import index_of

    count = len(annotations.items)
    if count == 0:
        return empty_columns(masks, keypoints)
    ann_ids = annotations.integers("id")
    image_ids = annotations.integers("image_id")
    known = np.unique(images.integers("id"))
    _, found = index_of(known, image_ids)
    fail_at(annotations, ~found, lambda i: f"image id {image_ids[i]} is not in the file's 'images'")
    xywh = annotations.vectors("bbox", 4)
    fail_at(
        annotations,
        (xywh[:, 2:] < 0).any(axis=1),
        lambda i: f"'bbox' {xywh[i].tolist()} has a negative width or height",
    )
    fail_at(
        annotations,
        outside_image(xywh, image_ids, images),
        lambda i: f"'bbox' {xywh[i].tolist()} lies wholly outside its image",
    )
    labels, found = label_map.labels(annotations.integers("category_id"))
    fail_at(annotations, ~found, lambda i: "category_id is not in the file's 'categories'")
    iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in annotations.items])
    area = np.array(
        [a.get("area", w * h) for a, (w, h) in zip(annotations.items, xywh[:, 2:].tolist())],
        dtype=np.float32,
    )
    keep = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
    columns: dict[str, Any] = {
        "image_id": image_ids,
        "annotation_ids": ann_ids,
        "labels": labels,
        "iscrowd": iscrowd,
        "area": area,
        "boxes": np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(
            np.float32
        ),
    }
    if masks:
        columns["segmentations"] = object_column(annotations.values("segmentation"))
    if keypoints:
        columns["keypoints"] = keypoint_column(annotations, labels, label_map)
    return {key: value[keep] for key, value in columns.items()}


def outside_image(xywh: np.ndarray, image_ids: np.ndarray, images: Any) -> np.ndarray:
    """[A] bool: the (non-empty) XYWH box ``[A, 4]`` has no pixel inside its image, as the
    file's ``width`` and ``height`` give it (all False when the file does not give them)."""
    from visionflow.evaluation.coco_io import index_of

    sizes = image_sizes(images)
    if not sizes or sizes[0] is None:
        return np.zeros(len(xywh), dtype=bool)
    ids = images.integers("id")
    order = np.argsort(ids, kind="stable")
    positions, _ = index_of(ids[order], image_ids)
    height, width = np.asarray(sizes, dtype=np.float64)[order][positions].T
    left, top, right, bottom = (
        xywh[:, 0],
        xywh[:, 1],
        xywh[:, 0] + xywh[:, 2],
        xywh[:, 1] + xywh[:, 3],
    )
    empty = (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
    return ~empty & ((left >= width) | (top >= height) | (right <= 0) | (bottom <= 0))


def object_column(values: list[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (numpy would turn nested lists into more dimensions)."""
    column = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        column[index] = value
    return column


def keypoint_column(annotations: Any, labels: np.ndarray, label_map: LabelMap) -> np.ndarray:
    """float32 [A, K, 3] keypoints; every annotation must have the same K, and a category that
    names its keypoints (``categories[].keypoints``) must name K of them."""
    values = annotations.values("keypoints")
    length = len(values[0]) if isinstance(values[0], list) else 0
    if length == 0 or length % 3:
        raise annotations.error(0, "'keypoints' must be a list of x, y, v triples")
    points = annotations.vectors("keypoints", length, values).reshape(len(values), -1, 3)
    check_keypoint_names(annotations, labels, points.shape[1], label_map)
    return points.astype(np.float32)


def check_keypoint_names(
    annotations: Any, labels: np.ndarray, count: int, label_map: LabelMap
) -> None:
    """A DataError names the first annotation whose category names other than ``count`` keypoints
    (flips swap left/right keypoints by those names, so they must match the points)."""
    if not label_map.keypoint_names:
        return
    named = np.array([len(names) for names in label_map.keypoint_names], dtype=np.int64)[labels]
    fail_at(
        annotations,
        (named > 0) & (named != count),
        lambda i: (
            f"'keypoints' has {count} points, but its category "
            f"{label_map.category_id(int(labels[i]))} names {named[i]} keypoints"
        ),
    )


def empty_columns(masks: bool, keypoints: bool) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "image_id": np.zeros(0, np.int64),
        "annotation_ids": np.zeros(0, np.int64),
        "labels": np.zeros(0, np.int64),
        "iscrowd": np.zeros(0, bool),
        "area": np.zeros(0, np.float32),
        "boxes": np.zeros((0, 4), np.float32),
    }
    if masks:
        columns["segmentations"] = np.zeros(0, dtype=object)
    if keypoints:
        columns["keypoints"] = np.zeros((0, 0, 3), np.float32)
    return columns


def fail_at(records: Any, bad: np.ndarray, problem) -> None:
    """Raise the DataError of the first ``bad`` record (its message names file, id, image id)."""
    if bad.any():
        index = int(np.argmax(bad))
        raise records.error(index, problem(index))


def group_by_image(ann_image_ids: np.ndarray, image_ids: np.ndarray) -> list[np.ndarray]:
    """For each image (in ``image_ids`` order), the indices of its annotations, in file order."""
    position = {int(image_id): i for i, image_id in enumerate(image_ids)}
    owners = np.array([position[int(i)] for i in ann_image_ids], dtype=np.int64)
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.arange(len(image_ids) + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(image_ids))]


def select(columns: dict[str, Any], indices: np.ndarray) -> dict[str, Any]:
    """The record fields of the annotations at ``indices``."""
    fields = {key: value[indices] for key, value in columns.items()}
    if "segmentations" in fields:
        fields["segmentations"] = tuple(fields["segmentations"])
    return fields
