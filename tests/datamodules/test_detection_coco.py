"""COCO instances: real RLE annotations (panopticapi sample), crowd, empty images, error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionflow.datamodules.coco_detection import CocoDetectionDataModule
from visionflow.datamodules.detection_base import DetectionRecord, decode_image
from visionflow.errors import DataError

PANOPTIC = "detection/panopticapi_sample"


@pytest.fixture(scope="module")
def panoptic(shared_data) -> CocoDetectionDataModule:
    return CocoDetectionDataModule(
        root=str(shared_data / PANOPTIC),
        val_annotations="panoptic_coco_detection_format.json",
        images="input_images",
        masks=True,
        batch_size=2,
    )


def test_real_coco_file_with_rle_masks_and_crowd(panoptic, shared_data):
    raw = json.loads((shared_data / PANOPTIC / "panoptic_coco_detection_format.json").read_text())
    panoptic.setup("validate")
    batch = next(iter(panoptic.val_dataloader()))
    assert [t.image_id for t in batch.targets] == sorted(i["id"] for i in raw["images"])
    for image, target in zip(batch.images, batch.targets):
        anns = [a for a in raw["annotations"] if a["image_id"] == target.image_id]
        meta = next(i for i in raw["images"] if i["id"] == target.image_id)
        assert image.shape == (3, meta["height"], meta["width"])
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float32)
        expected = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        np.testing.assert_allclose(target.boxes.numpy(), expected)  # XYWH -> XYXY
        assert target.iscrowd.tolist() == [bool(a["iscrowd"]) for a in anns]
        # masks decode from RLE to exactly the annotated areas
        assert target.masks.shape == (len(anns), meta["height"], meta["width"])
        assert target.masks.sum(dim=(1, 2)).tolist() == [a["area"] for a in anns]
        np.testing.assert_allclose(target.area.numpy(), [a["area"] for a in anns])


def test_non_contiguous_category_ids_round_trip(panoptic, shared_data):
    raw = json.loads((shared_data / PANOPTIC / "panoptic_coco_detection_format.json").read_text())
    ids = sorted(c["id"] for c in raw["categories"])
    assert ids[-1] > len(ids)  # the file's ids have gaps: a real test of the map
    label_map = panoptic.label_map
    assert list(label_map.category_ids) == ids and panoptic.info.num_classes == len(ids)
    labels, found = label_map.labels(np.array([a["category_id"] for a in raw["annotations"]]))
    assert found.all()
    assert [label_map.category_id(int(i)) for i in labels] == [
        a["category_id"] for a in raw["annotations"]
    ]


# ------------------------------------------------------------------------ a small written file


def write_coco(folder: Path, annotations: list[dict], images: int = 3) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for index in range(1, images + 1):
        Image.new("RGB", (40, 30), (index * 40, 0, 0)).save(folder / "images" / f"{index}.png")
    dataset = {
        "images": [
            {"id": i, "file_name": f"{i}.png", "height": 30, "width": 40}
            for i in range(1, images + 1)
        ],
        "categories": [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}],
        "annotations": annotations,
    }
    path = folder / "instances.json"
    path.write_text(json.dumps(dataset))
    return path


def annotation(ann_id: int, image_id: int, bbox: list[float], **extra) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 9,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
        **extra,
    }


def module(folder: Path, **kwargs) -> CocoDetectionDataModule:
    return CocoDetectionDataModule(
        root=str(folder),
        train_annotations="instances.json",
        val_annotations="instances.json",
        **kwargs,
    )


def test_empty_images_dropped_from_train_kept_for_evaluation(tmp_path):
    write_coco(
        tmp_path, [annotation(1, 1, [1, 2, 10, 5]), annotation(2, 2, [0, 0, 5, 5], iscrowd=1)]
    )  # image 2: crowd only
    assert [r.image_id for r in module(tmp_path).records("train")] == [1]
    assert [r.image_id for r in module(tmp_path).records("val")] == [1, 2, 3]
    kept = module(tmp_path, drop_empty_images=False).records("train")
    assert [r.image_id for r in kept] == [1, 2, 3]
    assert kept[1].iscrowd.tolist() == [True] and kept[0].labels.tolist() == [1]  # id 9 -> 1


def test_zero_size_boxes_are_dropped(tmp_path):
    write_coco(tmp_path, [annotation(1, 1, [1, 2, 0, 5]), annotation(2, 1, [1, 2, 3, 4])])
    record = module(tmp_path).records("val")[0]
    assert record.annotation_ids.tolist() == [2]


@pytest.mark.parametrize(
    "bad, problem",
    [
        (annotation(31, 1, [1, 2, -3, 4]), "negative width or height"),
        (annotation(31, 77, [1, 2, 3, 4]), "image id 77 is not in"),
        ({"id": 31, "image_id": 1, "category_id": 9, "iscrowd": 0}, "has no 'bbox'"),
        ({**annotation(31, 1, [1, 2, 3, 4]), "category_id": 4}, "category_id is not in"),
    ],
)
def test_malformed_annotations_name_file_image_and_annotation(tmp_path, bad, problem):
    path = write_coco(tmp_path, [annotation(1, 1, [1, 2, 3, 4]), bad])
    with pytest.raises(DataError) as error:
        module(tmp_path).records("train")
    message = str(error.value)
    assert problem in message and str(path) in message
    assert "id 31" in message and f"image_id {bad['image_id']}" in message


def test_corrupt_and_missing_images_name_file_and_image_id(tmp_path):
    write_coco(tmp_path, [annotation(1, 2, [1, 2, 3, 4])])
    (tmp_path / "images" / "2.png").write_bytes(b"not a png")
    (tmp_path / "images" / "3.png").unlink()
    records = {r.image_id: r for r in module(tmp_path).records("val")}
    with pytest.raises(DataError, match=r"2\.png: cannot decode the image \(.*image id 2\)"):
        decode_image(records[2])
    with pytest.raises(DataError, match=r"3\.png: image file is missing \(.*image id 3\)"):
        decode_image(records[3])


def test_image_size_disagreeing_with_the_file_is_an_error(tmp_path):
    write_coco(tmp_path, [])
    record = module(tmp_path).records("val")[0]
    wrong = DetectionRecord(**{**record.__dict__, "size": (31, 40)})
    with pytest.raises(DataError, match="image is 40x30 but .* says 40x31"):
        decode_image(wrong)


def test_malformed_segmentation_names_the_annotation(tmp_path):
    write_coco(tmp_path, [annotation(44, 1, [1, 2, 3, 4], segmentation=[[1, 2, 3]])])
    dm = module(tmp_path, masks=True)
    dm.setup("validate")
    with pytest.raises(
        DataError, match=r"image id 1, annotation id 44\): malformed 'segmentation'"
    ):
        dm.datasets["val"][0]


def test_masks_requested_but_absent_is_an_error(tmp_path):
    write_coco(tmp_path, [annotation(1, 1, [1, 2, 3, 4])])
    with pytest.raises(DataError, match="has no 'segmentation'"):
        module(tmp_path, masks=True).records("val")


def test_keypoints_are_carried_as_n_k_3(tmp_path):
    write_coco(tmp_path, [annotation(1, 1, [1, 2, 20, 20], keypoints=[5, 6, 2, 0, 0, 0])])
    dm = module(tmp_path, keypoints=True)
    dm.setup("validate")
    _, target = dm.datasets["val"][0]
    assert torch.equal(target.keypoints, torch.tensor([[[5.0, 6.0, 2.0], [0.0, 0.0, 0.0]]]))
