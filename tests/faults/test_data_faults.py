"""Bad data files: each is a DataError naming the file and the record (or is read correctly),
never a traceback from inside numpy, PIL or albumentations."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.datamodules.test_detection_coco import annotation, module, write_coco
from tests.datamodules.test_image_folder import write_folder
from visionflow.datamodules.image_folder import ImageFolderDataModule
from visionflow.errors import DataError

BOX = annotation(1, 1, [1, 2, 10, 5])


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            [{k: v for k, v in BOX.items() if k != "bbox"}],
            r"annotation #0 \(id 1, image_id 1\): has no 'bbox'",
        ),
        (
            [{k: v for k, v in BOX.items() if k != "image_id"}],
            r"annotation #0 \(id 1\): has no 'image_id'",
        ),
        (
            [{**BOX, "category_id": 77}],
            r"\(id 1, image_id 1\): category_id is not in the file's 'categories'",
        ),
        (
            [annotation(1, 1, [1, 2, -10, 5])],
            r"'bbox' \[1.0, 2.0, -10.0, 5.0\] has a negative width",
        ),
        (
            [annotation(1, 1, [100, 200, 10, 5])],
            r"\(id 1, image_id 1\): 'bbox' \[100.0, 200.0, 10.0, "
            r"5.0\] lies wholly outside its image",
        ),
        (
            [annotation(1, 2, [-12, 1, 10, 5])],
            r"\(id 1, image_id 2\): 'bbox' .* lies wholly outside",
        ),
    ],
    ids=[
        "missing-bbox",
        "missing-image-id",
        "unknown-category",
        "negative-size",
        "outside-the-image",
        "left-of-the-image",
    ],
)
def test_bad_coco_annotations_name_file_and_record(tmp_path, annotations, message):
    path = write_coco(tmp_path, annotations)
    with pytest.raises(DataError) as caught:
        module(tmp_path).records("val")
    line, *hint = str(caught.value).splitlines()
    assert line.startswith(f"{path}: annotation #0 ") and len(hint) <= 1
    assert caught.match(message)


def test_a_box_partly_outside_the_image_is_kept(tmp_path):
    write_coco(tmp_path, [annotation(1, 1, [-5, -2, 10, 5])])
    dm = module(tmp_path)
    dm.setup("validate")
    assert dm.datasets["val"][0] is not None


@pytest.mark.parametrize("damage", ["zero-byte", "cmyk-jpeg", "16-bit-png"])
def test_bad_and_unusual_image_files_in_an_image_folder(tmp_path, damage):
    root = write_folder(tmp_path)
    target = root / "bee" / "bee_1.png"
    if damage == "zero-byte":
        target.write_bytes(b"")
    elif damage == "cmyk-jpeg":
        target.unlink()
        target = target.with_suffix(".jpg")
        Image.new("CMYK", (12, 9), (0, 50, 100, 0)).save(target)
    else:
        Image.new("I;16", (12, 9), 4000).save(target)
    dm = ImageFolderDataModule(
        root=str(root), image_size=16, batch_size=32, val_fraction=0.0, test_fraction=0.0
    )
    if damage == "zero-byte":
        with pytest.raises(DataError, match=f"{target}: cannot decode image"):
            list(dm.train_dataloader())
    else:  # other modes are converted, not refused
        (batch,) = list(dm.train_dataloader())
        assert batch.images.shape[1:] == (3, 16, 16)
