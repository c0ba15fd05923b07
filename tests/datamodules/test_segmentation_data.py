"""Segmentation datamodules: PNG folders, VOC, COCO instances and panoptic, YOLO polygons,
shapes; the mask-aware presets; bad masks fail with the file named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.tasks.conftest import tiny_shapes
from visionflow.batches import IGNORE_INDEX
from visionflow.datamodules import (
    CocoSegmentationDataModule,
    SegmentationFolderDataModule,
    ShapesSegmentationDataModule,
    VOCSegmentationDataModule,
    YoloSegmentationDataModule,
)
from visionflow.datamodules.detection_samples import DetectionRecord
from visionflow.datamodules.segmentation_coco import semantic_from_instances
from visionflow.errors import DataError, SpecError

PANOPTIC = Path("detection/panopticapi_sample")


def write_pair(
    folder: Path,
    stem: str,
    mask: np.ndarray,
    image_size: tuple[int, int] | None = None,
    palette: bool = False,
) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    height, width = image_size or mask.shape
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(
        folder / "images" / f"{stem}.png"
    )
    png = Image.fromarray(mask.astype(np.uint8), mode="L")
    if palette:
        png = png.convert("P")
        png.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
        png = Image.fromarray(mask.astype(np.uint8), mode="P")
    png.save(folder / "masks" / f"{stem}.png")


def two_class_mask(size: int = 24) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[:, size // 2 :] = 1
    mask[0] = IGNORE_INDEX
    return mask


def write_segmentation_folder(root: Path) -> dict:
    """Small ``segmentation_folder`` data (two 24 px images per split) and its arguments."""
    for split in ("train", "val"):
        for stem in ("a", "b"):
            write_pair(root / split, stem, two_class_mask())
    return {"root": str(root), "class_names": ["ground", "thing"], "image_size": 16}


def write_voc_segmentation(root: Path) -> dict:
    """A VOC folder with palette masks (255 borders) and its arguments."""
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "SegmentationClass").mkdir()
    for stem in ("2008_000001", "2008_000002"):
        Image.new("RGB", (24, 20), (40, 80, 120)).save(root / "JPEGImages" / f"{stem}.jpg")
        mask = np.zeros((20, 24), np.uint8)
        mask[5:15, 5:15], mask[4, 4:16] = 15, IGNORE_INDEX
        image = Image.fromarray(mask, mode="P")
        image.putpalette([v for i in range(256) for v in (i, i, i)])
        image.save(root / "SegmentationClass" / f"{stem}.png")
    for name in ("train", "val"):
        (root / "ImageSets" / "Segmentation" / f"{name}.txt").write_text(
            "2008_000001\n2008_000002\n"
        )
    return {"root": str(root), "image_size": 16}


def test_folder_batches_resize_masks_nearest(tmp_path):
    dm = SegmentationFolderDataModule(**write_segmentation_folder(tmp_path), batch_size=2)
    dm.setup("fit")
    assert dm.info.num_classes == 2 and dm.info.image_size == (16, 16)
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, 16, 16) and masks.shape == (2, 16, 16)
    assert set(masks.unique().tolist()) == {0, 1, IGNORE_INDEX}
    train_masks = next(iter(dm.train_dataloader())).masks
    assert set(train_masks.unique().tolist()) <= {0, 1, IGNORE_INDEX}


def test_voc_palette_indices_are_the_labels(tmp_path):
    dm = VOCSegmentationDataModule(**write_voc_segmentation(tmp_path), eval_image_size=[20, 24])
    dm.setup("validate")
    _, mask = dm.datasets["val"][0]
    assert dm.info.num_classes == 21
    assert set(mask.unique().tolist()) == {0, 15, IGNORE_INDEX}
    assert (mask[5:15, 5:15] == 15).all() and (mask[4, 4:16] == IGNORE_INDEX).all()


@pytest.mark.parametrize(
    "problem, match",
    [
        ("size", r"b\.png: mask is 20x20 but its image .*b\.png is 24x24"),
        ("label", r"b\.png: label 7 is outside 0\.\.1 and is not the ignore index 255"),
        ("missing", r"b\.png: mask file is missing"),
    ],
)
def test_bad_masks_name_the_file(tmp_path, problem, match):
    write_segmentation_folder(tmp_path)
    bad = {"size": np.zeros((20, 20)), "label": np.full((24, 24), 7)}.get(problem)
    if bad is None:
        (tmp_path / "val" / "masks" / "b.png").unlink()
    else:
        write_pair(tmp_path / "val", "b", bad, image_size=(24, 24))
    dm = SegmentationFolderDataModule(
        root=str(tmp_path), class_names=["ground", "thing"], image_size=16
    )
    dm.setup("validate")
    with pytest.raises(DataError, match=match):
        dm.datasets["val"][1]


def test_bad_arguments_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="class_names: expected at least 2 distinct names"):
        SegmentationFolderDataModule(root=str(tmp_path), class_names=["a", "a"])
    with pytest.raises(SpecError, match="image_size: must be >= 16 px"):
        SegmentationFolderDataModule(root=str(tmp_path), class_names=["a", "b"], image_size=8)
    with pytest.raises(
        DataError, match="ImageSets/Segmentation/train.txt: image set file is missing"
    ):
        VOCSegmentationDataModule(root=str(tmp_path)).setup("fit")


def test_instances_paint_classes_and_ignore_crowds_and_conflicts():
    boxes = np.zeros((3, 4), np.float32)
    record = DetectionRecord(
        image_path=Path("x.png"),
        image_id=1,
        boxes=boxes,
        labels=np.array([0, 1, 1]),
        iscrowd=np.array([False, False, True]),
        annotation_ids=np.arange(3),
        source="test",
        segmentations=(
            [[0, 0, 6, 0, 6, 6, 0, 6]],
            [[4, 0, 10, 0, 10, 6, 4, 6]],
            [[0, 8, 4, 8, 4, 10, 0, 10]],
        ),
    )
    labels = semantic_from_instances(record, 12, 12)
    assert labels[2, 1] == 1 and labels[2, 8] == 2  # label + 1 per object
    assert labels[2, 5] == IGNORE_INDEX  # two classes overlap
    assert labels[9, 2] == IGNORE_INDEX and labels[11, 11] == 0  # crowd; background


def test_shapes_masks_follow_the_generated_objects(tmp_path):
    dm = tiny_shapes(ShapesSegmentationDataModule, tmp_path)
    dm.setup("validate")
    assert dm.info.class_names == ("background", "circle", "square", "triangle")
    record = dm.datasets["val"].records[0]
    instances = record.instances
    mask = record.read_mask(64, 64)
    for box, label in zip(instances.boxes.astype(int), instances.labels):
        x0, y0, x1, y1 = box
        centre = mask[(y0 + y1) // 2, (x0 + x1) // 2]
        assert centre == label + 1


def panoptic_module(root: Path, annotations: str, **kwargs) -> CocoSegmentationDataModule:
    return CocoSegmentationDataModule(
        str(root), train_annotations=annotations, images="input_images", image_size=64, **kwargs
    )


def test_panoptic_pngs_give_the_category_of_every_pixel(shared_data):
    root = shared_data / PANOPTIC
    dm = panoptic_module(root, "panoptic_examples.json", panoptic_masks="panoptic_examples")
    categories = json.loads((root / "panoptic_coco_categories.json").read_text())
    label_of = {c["id"]: i for i, c in enumerate(sorted(categories, key=lambda c: c["id"]))}
    assert len(dm.class_names) == 133
    for record in dm.load_split("train"):
        two_channel = np.asarray(
            Image.open(root / "panoptic_examples_2ch_format" / record.png_path.name)
        )[..., 0]
        expected = np.vectorize(lambda c: label_of.get(int(c), IGNORE_INDEX))(two_channel)
        np.testing.assert_array_equal(record.read_mask(*two_channel.shape), expected)


def test_panoptic_segment_missing_from_the_json_names_the_png(shared_data, tmp_path):
    root = shared_data / PANOPTIC
    panoptic = json.loads((root / "panoptic_examples.json").read_text())
    panoptic["annotations"][0]["segments_info"].pop()
    (tmp_path / "broken.json").write_text(json.dumps(panoptic))
    dm = CocoSegmentationDataModule(
        str(root),
        train_annotations=str(tmp_path / "broken.json"),
        images="input_images",
        panoptic_masks="panoptic_examples",
        image_size=64,
    )
    record = dm.load_split("train")[0]
    with pytest.raises(DataError, match=r"000000142238\.png: segment id\(s\) \[\d+\] are not in"):
        record.read_mask(427, 640)


def test_coco_instances_of_real_photos_agree_with_their_panoptic_labels(shared_data):
    root = shared_data / PANOPTIC
    dm = panoptic_module(root, "panoptic_coco_detection_format.json")
    assert dm.class_names[0] == "background" and len(dm.class_names) == 134
    dataset = dm.dataset("train")
    image, mask = dataset[0]
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64)
    record = dataset.records[0]
    from_instances = record.read_mask(427, 640).astype(np.int64)
    panoptic = np.asarray(Image.open(root / "panoptic_examples_2ch_format" / "000000142238.png"))[
        ..., 0
    ]
    painted = (from_instances != 0) & (from_instances != IGNORE_INDEX)
    label_of = {c: i for i, c in enumerate(dm.instances.label_map.category_ids)}
    same = from_instances[painted] - 1 == np.vectorize(lambda c: label_of.get(int(c), -1))(
        panoptic[painted]
    )
    assert same.mean() > 0.9  # the two exports draw the same segments (borders may differ)


def test_yolo_polygons_of_coco8_seg(shared_data):
    dm = YoloSegmentationDataModule(
        str(shared_data / "detection/coco8-seg/coco8-seg.yaml"), image_size=64, batch_size=4
    )
    dm.setup("fit")
    assert len(dm.class_names) == 81
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (4, 3, 64, 64)
    labels = masks[masks != IGNORE_INDEX]
    assert labels.max() < 81 and (labels > 0).float().mean() > 0.05
