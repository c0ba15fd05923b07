"""Bad input raises DataError with one line naming the file and the record, and a hint."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from visionflow.errors import DataError
from visionflow.evaluation.coco import CocoEvaluator, evaluate_coco

GT = {
    "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
    "categories": [{"id": 1, "name": "cat"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [1, 1, 10, 10],
            "area": 100,
            "iscrowd": 0,
            "segmentation": [[1, 1, 11, 1, 11, 11, 1, 11]],
        },
        {
            "id": 2,
            "image_id": 2,
            "category_id": 1,
            "bbox": [5, 5, 10, 10],
            "area": 100,
            "iscrowd": 0,
            "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]],
        },
    ],
}
DT = [
    {"image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.5},
    {"image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.4},
]


def evaluate_files(tmp_path: Path, gt: dict, dt: list, iou_type: str = "bbox"):
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    return evaluate_coco(gt_path, dt_path, iou_type)


def raises_data_error(run, *fragments: str) -> DataError:
    with pytest.raises(DataError) as caught:
        run()
    error = caught.value
    assert "\n" not in error.message, "the message is one line"
    assert error.hint and error.exit_code == 2
    for fragment in fragments:
        assert fragment in error.message
    return error


def set_in(record: dict, key: str, value):
    record[key] = value


BEYOND_FLOAT64 = 2**53 + 1  # the first integer that float64 rounds (to 2**53)


def move_image(gt: dict, old: int, new: int) -> None:
    """Renumber image ``old`` of ``gt`` to ``new``, with its annotations."""
    next(image for image in gt["images"] if image["id"] == old)["id"] = new
    for annotation in gt["annotations"]:
        if annotation["image_id"] == old:
            annotation["image_id"] = new


GT_CASES = {  # name: (change to a copy of GT, fragments of the message)
    "annotation without iscrowd": (
        lambda gt: gt["annotations"][1].pop("iscrowd"),
        ["gt.json", "annotation #1", "missing field 'iscrowd'"],
    ),
    "annotation without area": (
        lambda gt: gt["annotations"][0].pop("area"),
        ["annotation #0", "'area'"],
    ),
    "annotation without bbox": (
        lambda gt: gt["annotations"][1].pop("bbox"),
        ["annotation #1", "'bbox'"],
    ),
    "annotation without id": (lambda gt: gt["annotations"][1].pop("id"), ["annotation #1", "'id'"]),
    "negative width": (
        lambda gt: set_in(gt["annotations"][1], "bbox", [1, 1, -2, 3]),
        ["annotation #1", "negative width"],
    ),
    "unknown image": (
        lambda gt: set_in(gt["annotations"][1], "image_id", 9),
        ["image_id 9", "'images'"],
    ),
    "unknown category": (
        lambda gt: set_in(gt["annotations"][1], "category_id", 9),
        ["category_id 9"],
    ),
    "repeated annotation id": (
        lambda gt: set_in(gt["annotations"][1], "id", 1),
        ["annotation #1", "used twice"],
    ),
    "no annotations": (lambda gt: gt.pop("annotations"), ["gt.json", "'annotations'"]),
    "no images": (lambda gt: gt.pop("images"), ["gt.json", "'images'"]),
    "string image id": (lambda gt: set_in(gt["images"][1], "id", "2"), ["image #1", "'id'"]),
    "annotation id 0": (
        lambda gt: set_in(gt["annotations"][1], "id", 0),
        ["annotation #1", "id 0"],
    ),
    "box outside its image": (
        lambda gt: set_in(gt["annotations"][1], "bbox", [150, 5, 10, 10]),
        ["annotation #1", "wholly outside its 100x100 image"],
    ),
    "image id beyond 2**53": (
        lambda gt: move_image(gt, 2, BEYOND_FLOAT64),
        ["image #1", f"'id' {BEYOND_FLOAT64}", "from 0 to 2**53"],
    ),
    "negative image id": (lambda gt: move_image(gt, 2, -2), ["image #1", "'id' -2", "2**53"]),
    "image id beyond 64 bits": (  # numpy reads it as uint64, which int64 would wrap to -1
        lambda gt: set_in(gt["images"][1], "id", 2**64 - 1),
        ["image #1", f"'id' {2**64 - 1}", "2**53"],
    ),
    "image id a float beyond 64 bits": (
        lambda gt: set_in(gt["images"][1], "id", 1e20),
        ["image #1", "'id' 1e+20", "2**53"],
    ),
    "category id beyond 2**53": (
        lambda gt: set_in(gt["categories"][0], "id", BEYOND_FLOAT64),
        ["category #0", f"'id' {BEYOND_FLOAT64}", "2**53"],
    ),
    "negative annotation id": (
        lambda gt: set_in(gt["annotations"][1], "id", -5),
        ["annotation #1", "id -5", "2**53"],
    ),
}


DT_CASES = {  # name: (change to a copy of DT, fragments of the message)
    "detection without score": (
        lambda dt: dt[1].pop("score"),
        ["dt.json", "detection #1", "missing field 'score'"],
    ),
    "detection without category": (
        lambda dt: dt[1].pop("category_id"),
        ["detection #1", "'category_id'"],
    ),
    "detection without image": (lambda dt: dt[1].pop("image_id"), ["detection #1", "'image_id'"]),
    "detection without bbox": (lambda dt: dt[1].pop("bbox"), ["detection #1", "'bbox'"]),
    "image not in GT": (
        lambda dt: set_in(dt[1], "image_id", 77),
        ["detection #1", "image_id 77", "not an image of the ground truth", "gt.json"],
    ),
    "unknown category": (
        lambda dt: set_in(dt[1], "category_id", 5),
        ["detection #1", "category_id 5"],
    ),
    "negative height": (
        lambda dt: set_in(dt[1], "bbox", [1, 1, 3, -4]),
        ["detection #1", "negative"],
    ),
    "short bbox": (
        lambda dt: set_in(dt[1], "bbox", [1, 1, 3]),
        ["detection #1", "[x, y, width, height]"],
    ),
    "text in bbox": (
        lambda dt: set_in(dt[1], "bbox", [1, 1, 3, "4"]),
        ["detection #1", "'bbox'", "expected 'float', got 'str'"],
    ),
    "not an object": (lambda dt: dt.append(5), ["detection #2", "expected 'object', got 'int'"]),
    "box outside its image": (
        lambda dt: set_in(dt[1], "bbox", [-30, 5, 10, 10]),
        ["detection #1", "image_id 2", "wholly outside"],
    ),
    "string score": (lambda dt: set_in(dt[0], "score", "high"), ["detection #0", "'score'"]),
    "image id beyond 2**53": (
        lambda dt: set_in(dt[1], "image_id", BEYOND_FLOAT64),
        ["detection #1", f"image_id {BEYOND_FLOAT64}", "from 0 to 2**53"],
    ),
    "negative category id": (
        lambda dt: set_in(dt[0], "category_id", -1),
        ["detection #0", "category_id -1", "2**53"],
    ),
}


BAD_INPUT = {
    **{f"ground truth: {name}": ("gt", case) for name, case in GT_CASES.items()},
    **{f"results: {name}": ("dt", case) for name, case in DT_CASES.items()},
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_ground_truth_or_results(tmp_path, name):
    side, (change, fragments) = BAD_INPUT[name]
    files = {"gt": copy.deepcopy(GT), "dt": copy.deepcopy(DT)}
    change(files[side])
    raises_data_error(lambda: evaluate_files(tmp_path, files["gt"], files["dt"]), *fragments)


def test_nan_score_in_memory():
    dt = copy.deepcopy(DT)
    dt[0]["score"] = float("nan")
    raises_data_error(
        lambda: evaluate_coco(GT, dt, "bbox"), "<results>", "detection #0", "'score' is nan"
    )


def test_a_mask_of_the_wrong_size(tmp_path):
    dt = [dict(d, segmentation={"size": [50, 100], "counts": "PP]1"}) for d in DT]
    raises_data_error(
        lambda: evaluate_files(tmp_path, GT, dt, "segm"),
        "detection #0",
        "the mask is 50x100",
        "its image is 100x100",
    )


def test_segm_asked_but_results_have_no_segmentation(tmp_path):
    error = raises_data_error(
        lambda: evaluate_files(tmp_path, GT, DT, "segm"), "detection #0", "'segmentation'"
    )
    assert "segm" in error.hint


def test_keypoints_asked_but_data_has_none(tmp_path):
    error = raises_data_error(
        lambda: evaluate_files(tmp_path, GT, DT, "keypoints"), "annotation #0", "'keypoints'"
    )
    assert "num_keypoints" in error.hint


def test_segm_ids_outside_the_engine_range(tmp_path):
    gt = copy.deepcopy(GT)
    move_image(gt, 1, -1)
    dt = [dict(d, segmentation=[[1, 1, 9, 1, 9, 9]]) for d in DT]
    raises_data_error(
        lambda: evaluate_files(tmp_path, gt, dt, "segm"), "image #0", "'id' -1", "2**53"
    )


def test_segm_polygon_needs_image_size(tmp_path):
    gt = copy.deepcopy(GT)
    del gt["images"][0]["height"]
    dt = [dict(d, segmentation=[[1, 1, 9, 1, 9, 9]]) for d in DT]
    raises_data_error(lambda: evaluate_files(tmp_path, gt, dt, "segm"), "annotation #0", "'height'")


@pytest.mark.parametrize(
    "segmentation, fragment",
    [(5, "not polygons or RLE"), ({"counts": "abc"}, "'size'"), ([[]], "at least 3 (x, y) points")],
)
def test_bad_segmentation(tmp_path, segmentation, fragment):
    gt = copy.deepcopy(GT)
    gt["annotations"][1]["segmentation"] = segmentation
    raises_data_error(lambda: evaluate_files(tmp_path, gt, DT, "segm"), "annotation #1", fragment)


@pytest.mark.parametrize(
    "side, content, fragment",
    [
        ("gt", "", "empty"),
        ("gt", '{"images": [{"id": 1,', "invalid JSON"),
        ("gt", "[]", "expected 'object', got 'array'"),
        ("dt", "  \n", "empty"),
        ("dt", "[{]", "invalid JSON"),
        ("dt", '{"a": 1}', "expected 'array', got 'object'"),
    ],
)
def test_unreadable_ground_truth_or_results_file(tmp_path, side, content, fragment):
    path = tmp_path / f"{side}.json"
    path.write_text(content)
    files = {"gt": GT, "dt": DT, side: path}
    raises_data_error(lambda: evaluate_coco(files["gt"], files["dt"], "bbox"), str(path), fragment)


def test_missing_files(tmp_path):
    raises_data_error(
        lambda: evaluate_coco(tmp_path / "nope.json", DT, "bbox"), "nope.json", "no such file"
    )
    raises_data_error(
        lambda: evaluate_coco(GT, tmp_path / "nope.json", "bbox"), "nope.json", "no such file"
    )


def test_unknown_iou_type():
    raises_data_error(lambda: evaluate_coco(GT, DT, "mask"), "'mask'")


def test_evaluator_prediction_errors():
    evaluator = CocoEvaluator(GT, "bbox", label_to_category=[1])
    prediction = {"boxes": [[1.0, 1.0, 5.0, 5.0]], "scores": [0.5], "labels": [0]}
    raises_data_error(
        lambda: evaluator.process([prediction]), "<predictions>", "prediction #0", "'image_id'"
    )
    raises_data_error(
        lambda: evaluator.process([dict(prediction, labels=[3])], [{"image_id": 1}]),
        "image_id 1",
        "label 3",
    )
    raises_data_error(
        lambda: evaluator.process([dict(prediction, boxes=[[1.0, 2.0]])], [{"image_id": 1}]),
        "'boxes'",
        "[1, 4]",
    )
    evaluator.reset()
    evaluator.process([dict(prediction, image_id=5)])
    raises_data_error(
        evaluator.evaluate, "<predictions>", "image_id 5", "not an image of the ground truth"
    )
