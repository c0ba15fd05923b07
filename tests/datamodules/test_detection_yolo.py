"""YOLO txt labels (Ultralytics coco8 and coco8-seg) read into the detection contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionflow.datamodules.yolo_detection import YoloDetectionDataModule
from visionflow.errors import DataError


@pytest.fixture(scope="module")
def coco8(shared_data) -> Path:
    return shared_data / "detection" / "coco8"


def test_coco8_boxes_are_the_label_lines_in_pixels(coco8):
    dm = YoloDetectionDataModule(dataset_yaml=str(coco8 / "coco8.yaml"), batch_size=4)
    info = dm.info
    assert info.num_classes == 80 and info.class_names[0] == "person"
    assert info.category_ids == tuple(range(80))
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert len(batch) == 4
    for image, target in zip(batch.images, batch.targets):
        stem = f"{target.image_id:012d}"  # COCO-derived names keep their COCO image ids
        lines = np.loadtxt(coco8 / "labels" / "val" / f"{stem}.txt", ndmin=2)
        height, width = image.shape[1:]
        assert (height, width) == Image.open(coco8 / "images/val" / f"{stem}.jpg").size[::-1]
        cx, cy, w, h = (lines[:, 1:5] * [width, height, width, height]).T
        expected = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        np.testing.assert_allclose(
            target.boxes.numpy(), np.clip(expected, 0, [width, height] * 2), atol=1e-3
        )
        assert target.labels.tolist() == lines[:, 0].astype(int).tolist()


def test_coco8_seg_polygons_become_masks_inside_their_boxes(shared_data):
    dm = YoloDetectionDataModule(
        dataset_yaml=str(shared_data / "detection/coco8-seg/coco8-seg.yaml"),
        masks=True,
        batch_size=2,
    )
    dm.setup("fit")
    _, target = dm.datasets["val"][0]
    assert target.masks.shape[0] == len(target.boxes) > 0
    for box, mask in zip(target.boxes, target.masks):
        ys, xs = np.nonzero(mask.numpy())
        assert len(xs) > 0
        # the box is the polygon's extent; rasterization stays within a pixel of it
        assert xs.min() >= box[0] - 1 and xs.max() + 1 <= box[2] + 1
        assert ys.min() >= box[1] - 1 and ys.max() + 1 <= box[3] + 1
        assert xs.min() <= box[0] + 2 and ys.max() + 1 >= box[3] - 2


def write_yolo(root: Path, lines: list[str]) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (50, 40)).save(root / "images/train/a.png")
    Image.new("RGB", (50, 40)).save(root / "images/train/b.png")  # no label file: no objects
    (root / "labels/train/a.txt").write_text("\n".join(lines) + "\n")
    yaml = root / "data.yaml"
    yaml.write_text("path: .\ntrain: images/train\nval: images/train\nnames: [cat, dog]\n")
    return yaml


def test_missing_label_file_is_an_empty_image_and_ids_enumerate(tmp_path):
    yaml = write_yolo(tmp_path, ["1 0.5 0.5 0.2 0.5"])
    dm = YoloDetectionDataModule(dataset_yaml=str(yaml), drop_empty_images=True)
    assert [r.image_id for r in dm.records("val")] == [1, 2]
    assert [r.image_id for r in dm.records("train")] == [1]
    dm.setup("fit")
    _, target = dm.datasets["val"][0]
    np.testing.assert_allclose(target.boxes.numpy(), [[20, 10, 30, 30]], atol=1e-4)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("2 0.5 0.5 0.2 0.2", "class 2 is not in 0..1"),
        ("0 0.5 0.5 0.2", "3 coordinates"),
        ("0 0.5 x 0.2 0.2", "not numbers"),
        ("0 0.5 0.5 -0.2 0.2", "negative width"),
    ],
)
def test_bad_lines_name_file_line_and_image(tmp_path, line, problem):
    yaml = write_yolo(tmp_path, ["0 0.5 0.5 0.2 0.2", line])
    with pytest.raises(DataError, match=rf"a\.txt:2 \(image id 1\): .*{problem}"):
        YoloDetectionDataModule(dataset_yaml=str(yaml)).records("train")
