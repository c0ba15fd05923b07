"""Pascal VOC XML + JPEG, written by the test in the VOC layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionflow.datamodules.voc_detection import VOCDetectionDataModule
from visionflow.errors import DataError

OBJECT = (
    "<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
    "<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
)


def write_voc(root: Path, images: dict[str, list[dict]], split: str = "train") -> Path:
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for voc_id, objects in images.items():
        Image.new("RGB", (60, 40), (90, 120, 30)).save(root / "JPEGImages" / f"{voc_id}.jpg")
        body = "".join(OBJECT.format(**{"difficult": 0, **o}) for o in objects)
        (root / "Annotations" / f"{voc_id}.xml").write_text(
            f"<annotation><filename>{voc_id}.jpg</filename><size><width>60</width>"
            f"<height>40</height><depth>3</depth></size>{body}</annotation>"
        )
    (root / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(images) + "\n")
    return root


@pytest.fixture
def voc(tmp_path) -> Path:
    return write_voc(
        tmp_path,
        {
            "2008_000001": [
                {"name": "dog", "x1": 11, "y1": 6, "x2": 30, "y2": 25},
                {"name": "person", "x1": 1, "y1": 1, "x2": 60, "y2": 40, "difficult": 1},
            ],
            "2008_000002": [],
        },
    )


def test_voc_boxes_labels_and_difficult_as_crowd(voc):
    dm = VOCDetectionDataModule(root=str(voc), val_set="train", batch_size=2)
    assert dm.info.num_classes == 20 and dm.info.category_ids[0] == 1
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    target = next(t for t in batch.targets if t.image_id == 1)
    # 1-based inclusive pixel indices -> continuous XYXY
    np.testing.assert_allclose(target.boxes.numpy(), [[10, 5, 30, 25], [0, 0, 60, 40]], atol=1e-4)
    names = dm.label_map.names
    assert [names[i] for i in target.labels.tolist()] == ["dog", "person"]
    assert target.iscrowd.tolist() == [False, True]
    assert all(image.shape == (3, 40, 60) for image in batch.images)


def test_custom_classes_and_empty_images_dropped_for_training(voc):
    dm = VOCDetectionDataModule(root=str(voc), val_set="train", class_names=["person", "dog"])
    assert dm.label_map.category_ids == (1, 2) and dm.label_map.names == ("person", "dog")
    assert [r.image_id for r in dm.records("train")] == [1]
    assert [r.image_id for r in dm.records("val")] == [1, 2]


@pytest.mark.parametrize(
    "objects, problem",
    [
        ([{"name": "unicorn", "x1": 1, "y1": 1, "x2": 5, "y2": 5}], "unknown class 'unicorn'"),
        ([{"name": "dog", "x1": 9, "y1": 1, "x2": 5, "y2": 5}], "<bndbox> has xmax < xmin"),
        (
            [{"name": "dog", "x1": "a", "y1": 1, "x2": 5, "y2": 5}],
            "missing or non-numeric <bndbox>",
        ),
    ],
)
def test_bad_objects_name_file_image_and_object(tmp_path, objects, problem):
    write_voc(tmp_path, {"a": [{"name": "dog", "x1": 1, "y1": 1, "x2": 5, "y2": 5}, *objects]})
    with pytest.raises(DataError, match=rf"a\.xml \(image id 1, object #2\): {problem}"):
        VOCDetectionDataModule(root=str(tmp_path)).records("train")


def test_malformed_xml_and_missing_set_file(tmp_path):
    write_voc(tmp_path, {"a": []})
    (tmp_path / "Annotations/a.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"a\.xml: malformed XML \(image id 1\)"):
        VOCDetectionDataModule(root=str(tmp_path)).records("train")
    with pytest.raises(DataError, match=r"val\.txt: image set file is missing"):
        VOCDetectionDataModule(root=str(tmp_path)).records("val")
