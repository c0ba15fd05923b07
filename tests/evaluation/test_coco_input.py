"""The input layer's fast path (exact records, numpy columns) against its fallback and references:
a bad record deep in a file is still named, extra fields change nothing, id lookups agree with
numpy, and the columns handed to hotcoco give its own numbers (COCO and LVIS)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from benchmarks.coco_data import synthetic_coco
from visionflow.errors import DataError
from visionflow.evaluation.coco import LVIS_MAX_DETS, evaluate_coco
from visionflow.evaluation.coco_box_results import BoxDetection, box_columns, record_pieces
from visionflow.evaluation.coco_input import load_ground_truth
from visionflow.evaluation.coco_io import (
    DENSE_LOOKUP_SPAN,
    decode_exact,
    index_of,
    sorted_unique,
)
from visionflow.evaluation.coco_results import load_results


@pytest.fixture(scope="module")
def case() -> tuple[dict, list[dict]]:
    return synthetic_coco(seed=11, images=40, categories=6, dets_per_image=20, gt_per_image=4)


def write(tmp_path: Path, gt: dict, dt: list) -> tuple[Path, Path]:
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    return tmp_path / "gt.json", tmp_path / "dt.json"


@pytest.mark.parametrize(
    "change, fragments",
    [
        (lambda r: r.update(bbox=r["bbox"][:3]), ["'bbox' must be [x, y, width, height]"]),
        (
            lambda r: r.update(image_id=2**64 - 1),
            ["'image_id' 18446744073709551615 does not fit in 64 bits"],
        ),
        (lambda r: r.update(score=None), ["'score'", "expected 'float', got 'null'"]),
    ],
)
def test_a_bad_record_deep_in_a_file_is_named(tmp_path, case, change, fragments):
    gt, dt = copy.deepcopy(case)
    change(dt[len(dt) - 7])
    with pytest.raises(DataError) as caught:
        evaluate_coco(*write(tmp_path, gt, dt), "bbox")
    assert f"detection #{len(dt) - 7}" in caught.value.message and "\n" not in caught.value.message
    for fragment in fragments:
        assert fragment in caught.value.message


def test_a_bad_annotation_deep_in_a_file_is_named(tmp_path, case):
    gt, dt = copy.deepcopy(case)
    gt["annotations"][-3]["bbox"] = [1, 2, "3", 4]
    with pytest.raises(DataError, match=f"annotation #{len(gt['annotations']) - 3}: 'bbox'"):
        evaluate_coco(*write(tmp_path, gt, dt), "bbox")


def test_extra_fields_change_nothing(tmp_path, case):
    gt, dt = copy.deepcopy(case)
    plain = evaluate_coco(*write(tmp_path, gt, dt), "bbox")
    for index, record in enumerate(dt):
        record.update(id=index + 1, area=1.0, note="x")
    for annotation in gt["annotations"]:
        annotation["segmentation"] = []
    np.testing.assert_array_equal(
        evaluate_coco(*write(tmp_path, gt, dt), "bbox").precision, plain.precision
    )


def hotcoco_alone(coco_gt, coco_dt, lvis: bool = False):
    """hotcoco's own COCOeval, evaluated, accumulated and summarized."""
    import hotcoco

    engine = hotcoco.COCOeval(coco_gt, coco_dt, "bbox", lvis_style=lvis)
    engine.evaluate()
    engine.accumulate()
    engine.summarize()
    return engine


def test_files_dicts_and_hotcoco_alone_agree(tmp_path, case):
    hotcoco = pytest.importorskip("hotcoco")
    gt, dt = case
    gt_path, dt_path = write(tmp_path, gt, dt)
    coco_gt = hotcoco.COCO(str(gt_path))
    engine = hotcoco_alone(coco_gt, coco_gt.load_res(str(dt_path)))
    for ours in (evaluate_coco(gt_path, dt_path, "bbox"), evaluate_coco(gt, dt, "bbox")):
        np.testing.assert_array_equal(ours.stats, np.asarray(engine.stats))
        np.testing.assert_array_equal(ours.precision, engine.eval["precision"])


def test_lvis_boxes_without_iscrowd_equal_hotcoco_alone(case):
    hotcoco = pytest.importorskip("hotcoco")
    gt, dt = copy.deepcopy(case)
    for annotation in gt["annotations"]:
        annotation.pop("iscrowd")
    coco_gt = hotcoco.COCO(copy.deepcopy(gt))
    engine = hotcoco_alone(
        coco_gt, hotcoco.LVISResults(coco_gt, copy.deepcopy(dt), max_dets=LVIS_MAX_DETS), lvis=True
    )
    np.testing.assert_array_equal(
        evaluate_coco(gt, dt, "bbox", protocol="lvis").stats, np.asarray(engine.stats)
    )


@pytest.mark.parametrize("sorted_ids", [np.array([3, 5, 9, 40]), np.array([7, 2**40, 2**41])])
def test_index_of_agrees_with_searchsorted(sorted_ids):
    assert (sorted_ids[-1] - sorted_ids[0] <= DENSE_LOOKUP_SPAN) == (
        len(sorted_ids) == 4
    )  # both paths run
    ids = np.array([5, 3, 40, 4, -2, 41, 0, 9, 2**41, 2**40, 7, 2**40 + 1])
    positions, found = index_of(sorted_ids, ids)
    expected = np.isin(ids, sorted_ids)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(sorted_ids[positions[found]], ids[found])


def test_sorted_unique_is_np_unique():
    ids = np.random.default_rng(0).integers(-5, 50, 300)
    np.testing.assert_array_equal(sorted_unique(ids), np.unique(ids))
    assert len(sorted_unique(np.zeros(0, dtype=np.int64))) == 0


def test_record_pieces_cut_between_records_or_are_refused():
    """Wherever a cut falls (inside a string, between a record's nested objects), either every
    piece decodes and the pieces hold the records in order, or a piece fails to decode (and the
    file is then decoded whole)."""
    record = b'{"image_id":1,"category_id":2,"bbox":[1,2,3,4],"score":0.5'
    data = b'[%s,"note":"q},{\\"x\\":1}"},%s,"attrs":[{"a":1}, {"b":2}]} ,\n %s}]' % (
        record,
        record,
        record,
    )
    whole = msgspec.json.decode(data, type=list[BoxDetection])
    assert len(whole) == 3
    outcomes = set()
    for size in range(1, len(data)):
        pieces = [decode_exact(piece, list[BoxDetection]) for piece in record_pieces(data, size)]
        if None in pieces:
            outcomes.add("refused")
        else:
            assert [record for piece in pieces for record in piece] == whole
            outcomes.add("pieces")
    assert outcomes == {"refused", "pieces"}


def test_a_file_of_many_pieces(tmp_path):
    """A results file several pieces long gives the table of one whole decoding, and a bad
    record in its last piece is named by its place in the file."""
    gt, dt = synthetic_coco(seed=12, images=150, categories=5, dets_per_image=30)
    gt_path, dt_path = write(tmp_path, gt, dt)
    data = dt_path.read_bytes()
    assert len(list(record_pieces(data))) >= 3
    ground_truth = load_ground_truth(gt_path, "bbox")
    whole = box_columns(msgspec.json.decode(data, type=list[BoxDetection]))[2]
    np.testing.assert_array_equal(load_results(dt_path, ground_truth).columns, whole)
    dt[-5]["bbox"] = [1.0, 2.0, 3.0]
    write(tmp_path, gt, dt)
    with pytest.raises(DataError, match=f"detection #{len(dt) - 5} .*'bbox' must be"):
        load_results(dt_path, ground_truth)
