"""The panoptic shapes generator: COCO panoptic files that the reader and panopticapi accept."""

from __future__ import annotations

import json

import numpy as np
import pytest

from visionflow.datamodules.panoptic_shapes import make_panoptic_shapes_dataset
from visionflow.datamodules.segmentation_coco import read_panoptic
from visionflow.evaluation.panoptic import evaluate_panoptic


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes_panoptic")
    return folder, make_panoptic_shapes_dataset(folder, images=4, seed=3, image_size=48)


def test_every_pixel_is_a_listed_segment_with_sky_above_ground(scenes):
    folder, json_path = scenes
    records, labels = read_panoptic(json_path, folder / "images", folder / "panoptic")
    assert labels.names == ("circle", "square", "triangle", "sky", "ground")
    assert len(records) == 4
    for record in records:
        ids = record.read_segment_ids()
        assert ids.shape == (48, 48) and (ids > 0).all()
        category = dict(record.segment_labels)
        label_map = np.vectorize(category.get)(ids)
        assert (label_map < 3).any()  # at least one thing
        assert label_map[0, 0] in (0, 1, 2, 3) and label_map[-1, -1] in (0, 1, 2, 4)


def test_segments_info_matches_the_pngs(scenes):
    from PIL import Image

    folder, json_path = scenes
    dataset = json.loads(json_path.read_text())
    for annotation in dataset["annotations"]:
        rgb = np.asarray(Image.open(folder / "panoptic" / annotation["file_name"]), dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        found = {int(i): int(n) for i, n in zip(*np.unique(ids, return_counts=True))}
        assert found == {s["id"]: s["area"] for s in annotation["segments_info"]}


def test_ground_truth_scored_against_itself_is_perfect(scenes):
    folder, json_path = scenes
    result = evaluate_panoptic(json_path, folder / "panoptic", json_path, folder / "panoptic")
    for group in ("All", "Things", "Stuff"):
        assert result.metrics[group]["pq"] == pytest.approx(1.0)


def test_same_seed_same_files(scenes, tmp_path):
    folder, json_path = scenes
    again = make_panoptic_shapes_dataset(tmp_path, images=4, seed=3, image_size=48)
    assert again.read_bytes() == json_path.read_bytes()
    assert (tmp_path / "images" / "000002.png").read_bytes() == (
        folder / "images" / "000002.png"
    ).read_bytes()
