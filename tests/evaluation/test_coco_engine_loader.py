"""What hotcoco's own loader does with the inputs our checks reject or read differently.

hotcoco can read both files itself (``COCO(path)``, ``load_res(path)``, ``LVISResults``) and
report on them (``load_warnings``, ``healthcheck``). An optimistic ``eval coco`` would let it, and
run our checks only when it raises, warns or reports a finding. These tests pin its reaction to
every case of the bad-input corpus (``test_coco_errors``) and to valid inputs we read differently:
the table in docs/coco_evaluation.md. Several faults pass it silently, and the findings that
cover negative or outside boxes also flag valid boxes, so our checks stay in front of it
(docs/benchmarks.md, fourth round). A row that fails means hotcoco changed: update the table, and
see whether the optimistic path has become safe.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.coco_data import synthetic_coco
from tests.evaluation.test_coco_errors import DT, DT_CASES, GT, GT_CASES, set_in
from visionflow.errors import DataError
from visionflow.evaluation.coco import LVIS_MAX_DETS, evaluate_coco

hotcoco = pytest.importorskip("hotcoco")

RAISES, LOAD_WARNING, HEALTH_ERROR, HEALTH_WARNING, SILENT = (
    "raises",
    "load warning",
    "healthcheck error",
    "healthcheck warning",
    "silent",
)

#: hotcoco's reaction to each fault our checks reject (test_coco_errors' names)
GT_REACTIONS = {
    "annotation without iscrowd": SILENT,
    "annotation without area": SILENT,
    "annotation without bbox": SILENT,
    "annotation without id": SILENT,
    "negative width": HEALTH_WARNING,
    "unknown image": HEALTH_ERROR,
    "unknown category": HEALTH_ERROR,
    "repeated annotation id": LOAD_WARNING,
    "no annotations": SILENT,
    "no images": LOAD_WARNING,
    "string image id": RAISES,
    "annotation id 0": SILENT,
    "box outside its image": HEALTH_WARNING,
    "image id beyond 2**53": LOAD_WARNING,
    "negative image id": RAISES,
    "image id beyond 64 bits": LOAD_WARNING,
    "image id a float beyond 64 bits": RAISES,
    "category id beyond 2**53": LOAD_WARNING,
    "negative annotation id": RAISES,
}
DT_REACTIONS = {
    "detection without score": HEALTH_WARNING,
    "detection without category": RAISES,
    "detection without image": RAISES,
    "detection without bbox": HEALTH_ERROR,
    "image not in GT": LOAD_WARNING,
    "unknown category": LOAD_WARNING,
    "negative height": HEALTH_WARNING,
    "short bbox": RAISES,
    "text in bbox": RAISES,
    "not an object": RAISES,
    "box outside its image": HEALTH_WARNING,
    "string score": RAISES,
    "image id beyond 2**53": LOAD_WARNING,
    "negative category id": RAISES,
}
#: faults beyond test_coco_errors' tables: (side, change, iou type, hotcoco's reaction)
MORE_FAULTS = {
    "results: segm asked, no segmentation": ("dt", lambda dt: None, "segm", SILENT),
    "results: RLE of the wrong size": (
        "dt",
        lambda dt: [set_in(d, "segmentation", {"size": [50, 100], "counts": "PP]1"}) for d in dt],
        "segm",
        SILENT,
    ),
    "ground truth: polygon of 2 points": (
        "gt",
        lambda gt: set_in(gt["annotations"][1], "segmentation", [[1, 1, 5, 5]]),
        "segm",
        SILENT,
    ),
    "results: image id 2.0": ("dt", lambda dt: set_in(dt[1], "image_id", 2.0), "bbox", SILENT),
    "ground truth: annotation id 2.0": (
        "gt",
        lambda gt: set_in(gt["annotations"][1], "id", 2.0),
        "bbox",
        SILENT,
    ),
    "ground truth: keypoints asked, none given": ("gt", lambda gt: None, "keypoints", SILENT),
}


def write(folder: Path, gt: dict, dt: list) -> tuple[Path, Path]:
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    return gt_path, dt_path


def engine_reaction(gt_path: Path, dt_path: Path, protocol: str = "coco") -> str:
    """hotcoco's strongest reaction to the two files: an exception from its loader, a load
    warning, an error or a warning from ``healthcheck`` (the ground truth's with the results,
    and the results' own; the Distribution layer, which flags clean inputs too, left out), or
    none. ``protocol="lvis"`` reads the results with ``LVISResults``, as LVIS evaluation does."""
    try:
        coco_gt = hotcoco.COCO(str(gt_path))
        coco_dt = (
            hotcoco.LVISResults(coco_gt, str(dt_path), max_dets=LVIS_MAX_DETS)
            if protocol == "lvis"
            else coco_gt.load_res(str(dt_path))
        )
    except ValueError:
        return RAISES
    if coco_gt.load_warnings or coco_dt.load_warnings:
        return LOAD_WARNING
    reports = (coco_gt.healthcheck(coco_dt), coco_dt.healthcheck())
    if any(report["errors"] for report in reports):
        return HEALTH_ERROR
    if any(w["layer"] != "Distribution" for report in reports for w in report["warnings"]):
        return HEALTH_WARNING
    return SILENT


def corpus() -> dict[str, tuple[str, object, str, str]]:
    """Every case: name -> (side, change, iou type, hotcoco's reaction)."""
    cases = {
        f"ground truth: {n}": ("gt", GT_CASES[n][0], "bbox", r) for n, r in GT_REACTIONS.items()
    }
    cases.update(
        {f"results: {n}": ("dt", DT_CASES[n][0], "bbox", r) for n, r in DT_REACTIONS.items()}
    )
    return {**cases, **MORE_FAULTS}


def test_the_corpus_covers_every_case_of_the_error_tables():
    assert set(GT_REACTIONS) == set(GT_CASES) and set(DT_REACTIONS) == set(DT_CASES)


@pytest.mark.parametrize("name", corpus())
def test_hotcoco_reaction_to_a_fault_our_checks_reject(tmp_path, name):
    side, change, iou_type, reaction = corpus()[name]
    files = {"gt": copy.deepcopy(GT), "dt": copy.deepcopy(DT)}
    change(files[side])
    paths = write(tmp_path, files["gt"], files["dt"])
    with pytest.raises(DataError):
        evaluate_coco(*paths, iou_type)
    assert engine_reaction(*paths) == reaction


@pytest.mark.parametrize("name", DT_REACTIONS)
def test_lvis_results_draw_the_same_reaction(tmp_path, name):
    gt, dt = copy.deepcopy(GT), copy.deepcopy(DT)
    for annotation in gt["annotations"]:
        del annotation["iscrowd"]  # LVIS has none
    DT_CASES[name][0](dt)
    paths = write(tmp_path, gt, dt)
    with pytest.raises(DataError):
        evaluate_coco(*paths, "bbox", protocol="lvis")
    assert engine_reaction(*paths, protocol="lvis") == DT_REACTIONS[name]


@pytest.mark.parametrize(
    "score, reaction",
    [("NaN", RAISES), ("Infinity", LOAD_WARNING), ("-Infinity", LOAD_WARNING), ("1e400", RAISES)],
)
def test_hotcoco_reaction_to_a_score_that_is_not_finite(tmp_path, score, reaction):
    """NaN and Infinity are not JSON, yet common in results files (Python's json writes them);
    hotcoco refuses NaN, and reads an infinite score as none, with a load warning. 1e400 is JSON,
    beyond float64."""
    paths = write(tmp_path, GT, DT)
    paths[1].write_text(paths[1].read_text().replace('"score": 0.5', f'"score": {score}'))
    with pytest.raises(DataError):
        evaluate_coco(*paths, "bbox")
    assert engine_reaction(*paths) == reaction


@pytest.fixture(scope="module")
def case() -> tuple[dict, list[dict]]:
    """A small input whose boxes all lie inside their images (hotcoco flags those that do not)."""
    gt, dt = synthetic_coco(seed=5, images=30, categories=4, dets_per_image=15, gt_per_image=4)
    sizes = {image["id"]: (image["width"], image["height"]) for image in gt["images"]}
    for record in (*gt["annotations"], *dt):
        width, height = sizes[record["image_id"]]
        x, y, w, h = record["bbox"]
        left, top = max(x, 0), max(y, 0)
        record["bbox"] = [left, top, min(x + w, width) - left, min(y + h, height) - top]
    return gt, dt


def hotcoco_stats(gt_path: Path, dt_path: Path) -> np.ndarray:
    """hotcoco's bbox stats of the two files as it reads them itself."""
    coco_gt = hotcoco.COCO(str(gt_path))
    engine = hotcoco.COCOeval(coco_gt, coco_gt.load_res(str(dt_path)), "bbox")
    engine.evaluate()
    engine.accumulate()
    engine.summarize()
    return np.asarray(engine.stats)


def spread_area(gt: dict, dt: list) -> None:
    for record in dt:
        record["area"] = 1e9  # pycocotools' loadRes replaces it by w * h, and so does hotcoco


def ignore_some(gt: dict, dt: list) -> None:
    for annotation in gt["annotations"][::3]:
        annotation["ignore"] = 1  # pycocotools' COCOeval replaces it by iscrowd, as hotcoco does


def partly_outside(gt: dict, dt: list) -> None:
    image = gt["images"][0]
    dt[0].update(image_id=image["id"], bbox=[image["width"] - 5.0, 2.0, 40.0, 30.0])


def repeat_ids(gt: dict, dt: list) -> None:
    for record in dt:
        record.update(id=7, note="x")


#: inputs our checks accept: name -> (change, hotcoco's reaction)
VALID_INPUTS = {
    "clean": (lambda gt, dt: None, SILENT),
    "area on every detection": (spread_area, SILENT),
    "ignore on some annotations": (ignore_some, SILENT),
    "a detection partly outside its image": (partly_outside, HEALTH_WARNING),
    "repeated detection ids, extra keys": (repeat_ids, SILENT),
}


@pytest.mark.parametrize("name", VALID_INPUTS)
def test_hotcoco_reading_valid_inputs_scores_them_as_we_do(tmp_path, case, name):
    change, reaction = VALID_INPUTS[name]
    gt, dt = copy.deepcopy(case)
    change(gt, dt)
    paths = write(tmp_path, gt, dt)
    assert engine_reaction(*paths) == reaction
    np.testing.assert_array_equal(hotcoco_stats(*paths), evaluate_coco(*paths, "bbox").stats)
