"""Bad files in the detection datamodules (COCO, VOC, YOLO, shapes): each is one DataError naming
the file and the record, or is read correctly (a box partly outside its image is clipped, as
COCO's tools do; other image modes are converted), never a ValueError from inside
albumentations or PIL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.datamodules.test_detection_coco import annotation, module, write_coco
from tests.datamodules.test_detection_voc import write_voc
from tests.datamodules.test_detection_yolo import write_yolo
from visionflow.datamodules.shapes import ShapesDetectionDataModule
from visionflow.datamodules.voc_detection import VOCDetectionDataModule
from visionflow.datamodules.yolo_detection import YoloDetectionDataModule
from visionflow.errors import DataError

DOG = {"name": "dog", "x1": 11, "y1": 6, "x2": 30, "y2": 25}


def voc(root: Path, objects: list[dict], size: bool = True) -> VOCDetectionDataModule:
    """A one-image VOC set (60x40, 'a.jpg'), its XML without <size> unless ``size``."""
    write_voc(root, {"a": objects})
    if not size:
        xml = root / "Annotations" / "a.xml"
        text = xml.read_text()
        xml.write_text(text[: text.index("<size>")] + text[text.index("</size>") + 7 :])
    return VOCDetectionDataModule(root=str(root), val_set="train")


def yolo(root: Path, lines: list[str], masks: bool = False) -> YoloDetectionDataModule:
    """A YOLO set of two 50x40 images, 'a.png' labelled by ``lines``."""
    return YoloDetectionDataModule(dataset_yaml=str(write_yolo(root, lines)), masks=masks)


def first_item(datamodule):
    datamodule.setup("validate")
    return datamodule.datasets["val"][0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda root: voc(root, [{**DOG, "x1": 100, "x2": 120}]),
            r"a\.xml \(image id 1, annotation id 1\): box \[99.0, 5.0, 120.0, 25.0\] \(XYXY, "
            r"pixels of a 60x40 image\) lies wholly outside the image",
        ),
        (
            lambda root: voc(root, [DOG, {**DOG, "x1": -30, "x2": -5}]),
            r"a\.xml \(image id 1, annotation id 2\): box \[-31.0, .*lies wholly outside",
        ),
        (
            lambda root: voc(root, [{**DOG, "name": ""}]),
            r"a\.xml \(image id 1, object #1\): has no <name>",
        ),
        (
            lambda root: yolo(root, ["0 0.5 0.5 0.2 0.2", "1 1.5 0.5 0.2 0.2"]),
            r"a\.txt \(image id 1, annotation id 2\): box \[1.4, 0.4, 1.6, 0.6\] \(XYXY, "
            r"fractions of the image\) lies wholly outside the image",
        ),
        (
            lambda root: yolo(root, ["0 -0.3 -0.2 -0.1 -0.4 -0.2 -0.3"], masks=True),
            r"a\.txt \(image id 1, annotation id 1\): box .*lies wholly outside",
        ),
    ],
    ids=["voc-right-of", "voc-negative", "voc-no-name", "yolo-box", "yolo-polygon"],
)
def test_bad_voc_and_yolo_annotations_name_file_and_record(tmp_path, make, message):
    with pytest.raises(DataError, match=message) as caught:
        make(tmp_path).records("train")
    assert len(str(caught.value).splitlines()) <= 2  # the line and its hint


def test_without_image_sizes_a_box_outside_is_found_when_the_image_is_read(tmp_path):
    datamodule = voc(tmp_path, [{**DOG, "y1": 41, "y2": 50}], size=False)
    with pytest.raises(
        DataError,
        match=r"a\.xml \(image id 1, annotation id 1\): box .* "
        r"pixels of a 60x40 image\) lies wholly outside",
    ):
        first_item(datamodule)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: voc(root, [{**DOG, "x1": -3, "x2": 70}]), [[0, 5, 60, 25]]),
        (lambda root: yolo(root, ["0 0.95 0.5 0.2 0.2"], masks=True), [[42.5, 16, 50, 24]]),
    ],
    ids=["voc", "yolo"],
)
def test_a_box_partly_outside_is_clipped_to_the_image(tmp_path, make, expected):
    _, target = first_item(make(tmp_path))
    np.testing.assert_allclose(target.boxes.numpy(), expected, atol=1e-4)


# ------------------------------------------------------------------------------- image files


@pytest.fixture(scope="module")
def shapes_original(tmp_path_factory) -> Path:
    """A generated shapes set of one 32x32 image a split, with masks."""
    root = tmp_path_factory.mktemp("shapes")
    shapes_module(root).prepare_data()
    return root


def shapes_module(root: Path) -> ShapesDetectionDataModule:
    return ShapesDetectionDataModule(
        data_dir=str(root), train_images=1, val_images=1, test_images=1, image_size=32, masks=True
    )


@pytest.fixture(params=["coco", "voc", "yolo", "shapes"])
def source(request, tmp_path, shapes_original):
    """(a detection datamodule over a folder of its own, the file of its first val image)."""
    if request.param == "coco":
        write_coco(tmp_path, [annotation(1, 1, [1, 2, 10, 5])])
        return module(tmp_path), tmp_path / "images" / "1.png"
    if request.param == "voc":
        return voc(tmp_path, [DOG]), tmp_path / "JPEGImages" / "a.jpg"
    if request.param == "yolo":
        return yolo(tmp_path, ["0 0.5 0.5 0.2 0.2"]), tmp_path / "images" / "train" / "a.png"
    shutil.copytree(shapes_original, tmp_path / "shapes")
    return shapes_module(tmp_path / "shapes"), tmp_path / "shapes" / "val/images/000001.png"


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "not-an-image"])
def test_an_unreadable_image_is_one_line_naming_it(source, damage):
    datamodule, image = source
    if damage == "zero-byte":
        image.write_bytes(b"")
    elif damage == "truncated":
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    else:
        image.write_text("<html>404</html>")
    with pytest.raises(DataError, match=rf"{image}: cannot decode the image \(.*image id 1\)"):
        first_item(datamodule)


@pytest.mark.parametrize(
    ("mode", "pixel", "expected"),
    [
        ("CMYK", (0, 0, 0, 0), 255),
        ("I;16", 40000, 40000 // 257),  # 16-bit grey: scaled, not clipped to white
        ("P", 0, 0),
        ("LA", (128, 255), 128),
        ("RGBA", (7, 7, 7, 0), 7),
    ],
)
def test_other_image_modes_are_converted(source, mode, pixel, expected):
    datamodule, image = source
    with Image.open(image) as original:
        size = original.size
    Image.new(mode, size, pixel).save(image, format="PNG" if mode != "CMYK" else "JPEG")
    pixels, _ = first_item(datamodule)
    assert pixels.shape[0] == 3
    np.testing.assert_allclose(pixels.numpy(), expected / 255, atol=1 / 255)


def test_a_mask_of_another_size_than_its_image_names_the_annotation(tmp_path, shapes_original):
    from pycocotools import mask as mask_utils

    shutil.copytree(shapes_original, tmp_path / "shapes")
    path = tmp_path / "shapes" / "val" / "annotations.json"
    dataset = json.loads(path.read_text())
    rle = mask_utils.encode(np.asfortranarray(np.ones((16, 16), dtype=np.uint8)))
    dataset["annotations"][0]["segmentation"] = {"size": [16, 16], "counts": rle["counts"].decode()}
    path.write_text(json.dumps(dataset))
    with pytest.raises(
        DataError,
        match=r"annotations\.json \(image id 1, annotation id \d+\): malformed 'segmentation': "
        r"RLE size \[16, 16\] is not the image's \[32, 32\]",
    ):
        first_item(shapes_module(tmp_path / "shapes"))
