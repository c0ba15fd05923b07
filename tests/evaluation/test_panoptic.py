"""`visionflow eval panoptic` and `eval semantic`: hand-computed cases, the real panoptic sample, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionflow.cli import main
from visionflow.errors import DataError
from visionflow.evaluation.panoptic import evaluate_panoptic

CATEGORIES = [{"id": 1, "name": "thing", "isthing": 1}, {"id": 2, "name": "stuff", "isthing": 0}]


def write_panoptic(folder: Path, name: str, segment_ids: np.ndarray, segments: list[dict]) -> Path:
    """``name``.json + ``name``/1.png (segment id = R + 256 G + 256² B) for image 1."""
    (folder / name).mkdir(parents=True)
    rgb = np.stack(
        [segment_ids % 256, segment_ids // 256 % 256, segment_ids // 65536], axis=-1
    ).astype(np.uint8)
    Image.fromarray(rgb).save(folder / name / "1.png")
    data = {
        "images": [{"id": 1, "file_name": "1.jpg", "height": 4, "width": 4}],
        "categories": CATEGORIES,
        "annotations": [{"image_id": 1, "file_name": "1.png", "segments_info": segments}],
    }
    (folder / f"{name}.json").write_text(json.dumps(data))
    return folder / f"{name}.json"


@pytest.fixture
def case(tmp_path):
    """GT: a thing on the left half (8 px), stuff on the right (8 px). Prediction: the thing
    on 6 of its 8 pixels (2 void), the stuff exact. Thing IoU 6/8: PQ 0.75; stuff PQ 1."""
    truth = np.array([[5, 5, 9, 9]] * 4)
    predicted = truth.copy()
    predicted[0, :2] = 0
    segments = [
        {"id": 5, "category_id": 1, "iscrowd": 0, "area": 8},
        {"id": 9, "category_id": 2, "iscrowd": 0},
    ]
    gt = write_panoptic(tmp_path, "gt", truth, segments)
    pred = write_panoptic(tmp_path, "pred", predicted, [dict(segments[0], area=6), segments[1]])
    return gt, tmp_path / "gt", pred, tmp_path / "pred"


def test_hand_computed_pq(case):
    result = evaluate_panoptic(*case)
    assert result.metrics["Things"]["pq"] == pytest.approx(0.75)
    assert result.metrics["Stuff"]["pq"] == pytest.approx(1.0)
    assert result.metrics["All"]["pq"] == pytest.approx(0.875)
    assert result.metrics["All"]["rq"] == pytest.approx(1.0) and result.metrics["All"][
        "sq"
    ] == pytest.approx(0.875)
    assert result.per_class[1]["name"] == "thing" and result.per_class[1]["tp"] == 1


def test_a_category_in_no_image_scores_zero_as_in_panopticapi(case):
    """panopticapi's ``pq_average`` gives a category without tp, fp or fn pq = sq = rq = 0.0
    and leaves it out of the averages (the engine reports -1)."""
    for path in (case[0], case[2]):
        data = json.loads(path.read_text())
        data["categories"] = [*CATEGORIES, {"id": 3, "name": "unseen", "isthing": 1}]
        path.write_text(json.dumps(data))
    result = evaluate_panoptic(*case)
    assert [result.per_class[3][k] for k in ("pq", "sq", "rq", "tp", "fp", "fn")] == [0.0] * 3 + [
        0
    ] * 3
    assert result.metrics["Things"]["pq"] == pytest.approx(0.75)


def test_command_writes_json(case, tmp_path, capsys):
    gt, gt_folder, pred, pred_folder = case
    out = tmp_path / "pq.json"
    assert (
        main(
            [
                "eval",
                "panoptic",
                "--gt-json",
                str(gt),
                "--gt-folder",
                str(gt_folder),
                "--pred-json",
                str(pred),
                "--pred-folder",
                str(pred_folder),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert "Things" in capsys.readouterr().out
    assert json.loads(out.read_text())["All"]["pq"] == pytest.approx(0.875)


def test_bad_input_is_one_line(case):
    gt, gt_folder, pred, pred_folder = case
    data = json.loads(pred.read_text())
    data["annotations"][0]["segments_info"][0]["category_id"] = 7
    pred.write_text(json.dumps(data))
    with pytest.raises(DataError, match="segment 5: category_id 7 is not in"):
        evaluate_panoptic(gt, gt_folder, pred, pred_folder)
    (pred_folder / "1.png").unlink()
    data["annotations"][0]["segments_info"][0]["category_id"] = 1
    pred.write_text(json.dumps(data))
    with pytest.raises(DataError, match="no such PNG"):
        evaluate_panoptic(gt, gt_folder, pred, pred_folder)


def test_real_sample_against_itself(shared_data, tmp_path):
    folder = shared_data / "detection" / "panopticapi_sample"
    data = json.loads((folder / "panoptic_examples.json").read_text())
    data["categories"] = json.loads((folder / "panoptic_coco_categories.json").read_text())
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(data))
    result = evaluate_panoptic(gt, folder / "panoptic_examples", gt, folder / "panoptic_examples")
    assert result.metrics["All"]["pq"] == 1.0 and result.metrics["All"]["n"] == 8


def test_semantic_command(tmp_path, capsys):
    for name, labels in (("gt", [[0, 1], [2, 255]]), ("pred", [[0, 1], [1, 2]])):
        (tmp_path / name).mkdir()
        Image.fromarray(np.array(labels, dtype=np.uint8)).save(tmp_path / name / "a.png")
    out = tmp_path / "m.json"
    folders = ["--gt-folder", str(tmp_path / "gt"), "--pred-folder", str(tmp_path / "pred")]
    semantic = ["eval", "semantic", *folders, "--num-classes", "3"]
    assert main([*semantic, "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["IoU/0"] == 1.0 and metrics["IoU/1"] == 0.5 and metrics["IoU/2"] == 0.0
    assert metrics["mIoU"] == pytest.approx(0.5) and metrics["pixel_acc"] == pytest.approx(2 / 3)
    (tmp_path / "pred" / "a.png").unlink()
    assert main(semantic) == 2
    assert "no prediction for" in capsys.readouterr().err


@pytest.mark.parametrize(
    "side, field, set_negative",
    [
        ("pred", "segments_info", lambda d: d["annotations"][0]["segments_info"][0].update(id=-5)),
        ("gt", "image_id", lambda d: d["annotations"][0].update(image_id=-1)),
        ("gt", "images", lambda d: d["images"][0].update(id=-1)),
    ],
)
def test_a_negative_id_is_one_line(case, side, field, set_negative):
    # the engine takes non-negative ids only: a negative one was its ValueError, a traceback
    gt, gt_folder, pred, pred_folder = case
    path = gt if side == "gt" else pred
    data = json.loads(path.read_text())
    set_negative(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=f"{path.name}.*>= 0.*{field}"):
        evaluate_panoptic(gt, gt_folder, pred, pred_folder)
