"""Panoptic datamodules: generated shapes and the real panopticapi sample as PanopticBatches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionflow.batches import PanopticBatch
from visionflow.datamodules.panoptic import CocoPanopticDataModule
from visionflow.errors import DataError

SAMPLE = Path("detection/panopticapi_sample")


def test_shapes_batches_cover_every_pixel_with_things_and_stuff(shapes_panoptic):
    batch = next(iter(shapes_panoptic.val_dataloader()))
    assert isinstance(batch, PanopticBatch) and batch.images.shape == (2, 3, 48, 48)
    assert shapes_panoptic.info.thing_classes == (True, True, True, False, False)
    assert shapes_panoptic.info.category_ids == (1, 2, 3, 4, 5)
    for target in batch.targets:
        masks = target.segment_masks()  # [N, 48, 48]
        assert masks.shape == (len(target.labels), 48, 48)
        assert torch.equal(masks.sum(0), torch.ones(48, 48, dtype=torch.int64))
        assert {3, 4} <= set(target.labels.tolist()) and min(target.labels.tolist()) < 3


def test_real_pngs_map_to_their_categories(shared_data):
    root = shared_data / SAMPLE
    dm = real_module(root, "panoptic_examples.json")
    image, target = real_item(dm)
    png = np.asarray(Image.open(root / "panoptic_examples_2ch_format" / "000000142238.png"))
    categories = sorted(
        c["id"] for c in json.loads((root / "panoptic_examples.json").read_text())["categories"]
    )
    label_of = {c: i for i, c in enumerate(categories)}
    expected = np.vectorize(lambda c: label_of.get(int(c), -1))(png[..., 0])
    painted = np.full(png.shape[:2], -1)
    for mask, label in zip(target.segment_masks().numpy(), target.labels.tolist()):
        painted[mask] = label
    assert image.shape == (3, *png.shape[:2])
    np.testing.assert_array_equal(painted, expected)
    assert dm.info.thing_classes[label_of[1]] and not dm.info.thing_classes[-1]


def test_png_id_missing_from_the_json_names_the_png(shared_data, tmp_path):
    root = shared_data / SAMPLE
    panoptic = json.loads((root / "panoptic_examples.json").read_text())
    panoptic["annotations"][0]["segments_info"].pop()
    (tmp_path / "broken.json").write_text(json.dumps(panoptic))
    with pytest.raises(DataError, match=r"000000142238\.png: segment id\(s\) \[\d+\] are not in"):
        real_item(real_module(root, str(tmp_path / "broken.json")))


def real_module(root: Path, annotations: str) -> CocoPanopticDataModule:
    """The sample's val split, its first photo (427x640) kept at its own size."""
    return CocoPanopticDataModule(
        str(root),
        annotations={"val": annotations},
        images={"val": "input_images"},
        panoptic_masks={"val": "panoptic_examples"},
        image_size=[427, 640],
    )


def real_item(dm: CocoPanopticDataModule):
    dm.setup("validate")
    return dm.datasets["val"][0]
