"""OKS with custom per-keypoint sigmas: checked like every other input, exact to pycocotools'
COCOeval with the same ``kpt_oks_sigmas``."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
import torch

from visionflow.batches import DetectionTarget
from visionflow.cli import main
from visionflow.errors import DataError, SpecError
from visionflow.evaluation.coco import evaluate_coco
from visionflow.evaluation.coco_shards import evaluate_coco_in_shards
from visionflow.evaluation.detection import DetectionEvaluator, coco_dataset, ground_truth_entry
from visionflow.tasks import KeypointDetectionTask

SIGMAS = (0.03, 0.05, 0.08, 0.11, 0.06)  # K = 5, none of them COCO's
NAMES = ["a", "b", "c", "d", "e"]


def random_targets(seed: int, images: int = 6) -> list[DetectionTarget]:
    """Up to 4 objects an image of 2 categories, K keypoints each, some not labelled (v = 0)."""
    rng = np.random.default_rng(seed)
    targets = []
    for image_id in range(1, images + 1):
        count = int(rng.integers(0, 5))
        corners = rng.uniform(0, 60, (count, 2))
        sizes = rng.uniform(8, 40, (count, 2))
        boxes = np.concatenate([corners, corners + sizes], axis=1)
        points = corners[:, None] + rng.uniform(0, 1, (count, len(SIGMAS), 2)) * sizes[:, None]
        visible = rng.choice([0, 1, 2], (count, len(SIGMAS), 1), p=[0.2, 0.3, 0.5])
        keypoints = np.concatenate([points, visible], axis=2)
        targets.append(
            DetectionTarget(
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                torch.tensor(rng.integers(0, 2, count)),
                image_id,
                keypoints=torch.tensor(keypoints, dtype=torch.float32).reshape(-1, 5, 3),
            )
        )
    return targets


def detections_of(target: DetectionTarget, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """The target's objects with keypoints moved by a few pixels, random scores, and one
    false positive."""
    keypoints = target.keypoints.clone()
    keypoints[..., :2] += torch.tensor(rng.normal(0, 2.5, keypoints[..., :2].shape)).float()
    keypoints[..., 2] = 1.0
    extra = torch.tensor([[[5.0, 5.0, 1.0]] * len(SIGMAS)])
    return {
        "boxes": torch.cat([target.boxes, torch.tensor([[0.0, 0.0, 10.0, 10.0]])]),
        "scores": torch.tensor(rng.uniform(0.1, 1.0, len(target.labels) + 1)).float(),
        "labels": torch.cat([target.labels, torch.tensor([0])]),
        "keypoints": torch.cat([keypoints, extra]),
    }


def pycocotools_stats(gt: dict, results: list[dict], sigmas: tuple[float, ...]) -> np.ndarray:
    """pycocotools' COCOeval of keypoint ``results`` with ``params.kpt_oks_sigmas = sigmas``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        engine = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "keypoints")
        engine.params.kpt_oks_sigmas = np.array(sigmas)
        engine.evaluate()
        engine.accumulate()
        engine.summarize()
    return np.asarray(engine.stats)


def scored_case(seed: int) -> tuple[DetectionEvaluator, dict, list[dict]]:
    """A DetectionEvaluator (SIGMAS) that processed random targets and their detections, and the
    same case as a COCO ground truth dict and results list."""
    targets = random_targets(seed)
    rng = np.random.default_rng(100 + seed)
    detections = [detections_of(t, rng) for t in targets]
    entries = [ground_truth_entry(t, (100, 100), [1, 2], with_keypoints=True) for t in targets]
    evaluator = DetectionEvaluator([1, 2], ["x", "y"], ("bbox", "keypoints"), SIGMAS)
    evaluator.process(detections, entries)
    results = [
        result
        for target, detection in zip(targets, detections)
        for result in evaluator.results_of(detection, target.image_id, "keypoints")
    ]
    return evaluator, coco_dataset(entries, [1, 2], ["x", "y"]), results


@pytest.mark.parametrize("seed", range(4))
def test_custom_sigmas_match_pycocotools(seed):
    evaluator, gt, results = scored_case(seed)
    expected = pycocotools_stats(gt, results, SIGMAS)
    np.testing.assert_array_equal(evaluator.evaluate().details["keypoints"].stats, expected)
    np.testing.assert_array_equal(
        evaluate_coco(gt, results, "keypoints", "coco", SIGMAS).stats, expected
    )
    sharded = evaluate_coco_in_shards(gt, results, "keypoints", 3, keypoint_sigmas=SIGMAS)
    np.testing.assert_array_equal(sharded.stats, expected)
    # the sigmas matter: COCO-like wider ones give other figures on the same input
    wider = tuple(2 * s for s in SIGMAS)
    assert not np.array_equal(pycocotools_stats(gt, results, wider), expected)


@pytest.mark.parametrize(
    "sigmas, fragment",
    [
        ([0.05, 0.0, 0.05, 0.05, 0.05], "finite positive"),
        ([0.05, -0.1, 0.05, 0.05, 0.05], "finite positive"),
        ([0.05, math.nan, 0.05, 0.05, 0.05], "finite positive"),
        ([0.05, math.inf, 0.05, 0.05, 0.05], "finite positive"),
        ([], "finite positive"),
        (["wide"] * 5, "finite positive"),
    ],
)
def test_bad_sigmas_name_the_argument_in_one_line(sigmas, fragment):
    for make in (
        lambda: DetectionEvaluator([1], ["x"], ("bbox", "keypoints"), sigmas),
        lambda: evaluate_coco(coco_dataset([], [1], ["x"]), [], "keypoints", "coco", sigmas),
        lambda: KeypointDetectionTask(num_classes=1, keypoint_names=NAMES, keypoint_sigmas=sigmas),
    ):
        with pytest.raises(SpecError, match=f"^keypoint_sigmas: .*{fragment}") as error:
            make()
        assert "\n" not in error.value.message


def test_sigmas_of_another_count_than_the_datas_keypoints():
    """Four sigmas for five keypoints: the ground truth's check names keypoint_sigmas."""
    (target,) = [t for t in random_targets(0) if len(t.labels)][:1]
    entry = ground_truth_entry(target, (100, 100), [1, 2], with_keypoints=True)
    evaluator = DetectionEvaluator([1, 2], ["x", "y"], ("keypoints",), SIGMAS[:4])
    evaluator.process(
        [{k: v[:0] for k, v in detections_of(target, np.random.default_rng(0)).items()}], [entry]
    )
    with pytest.raises(DataError, match=r"one per keypoint_sigmas \(4\)") as error:
        evaluator.evaluate()
    assert "must be 12 finite numbers" in error.value.message and "\n" not in error.value.message
    with pytest.raises(SpecError, match=r"^keypoint_sigmas: 4 values for 5 keypoint_names"):
        KeypointDetectionTask(num_classes=1, keypoint_names=NAMES, keypoint_sigmas=SIGMAS[:4])


@pytest.fixture
def keypoint_files(tmp_path) -> tuple[list[str], dict, list[dict]]:
    """``eval coco`` arguments for a K = 5 keypoint case written to files, and the case."""
    _, gt, results = scored_case(7)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    argv = ["eval", "coco", "--gt", str(tmp_path / "gt.json"), "--dt", str(tmp_path / "dt.json")]
    return argv, gt, results


def test_cli_keypoint_sigmas_match_pycocotools(keypoint_files, tmp_path, capsys):
    argv, gt, results = keypoint_files
    out = tmp_path / "out.json"
    sigmas = [str(sigma) for sigma in SIGMAS]
    argv += ["--iou-type", "keypoints", "--keypoint-sigmas", *sigmas, "--json", str(out)]
    assert main(argv) == 0
    stats = json.loads(out.read_text())["stats"]
    np.testing.assert_array_equal(stats, pycocotools_stats(gt, results, SIGMAS))
    assert "Average Precision" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--iou-type", "keypoints", "--keypoint-sigmas", "0.05", "0", "0.1"], "value #2 ('0')"),
        (["--iou-type", "keypoints", "--keypoint-sigmas", "-0.1"], "value #1 ('-0.1')"),
        (["--iou-type", "keypoints", "--keypoint-sigmas", "nan"], "value #1 ('nan')"),
        (["--iou-type", "keypoints", "--keypoint-sigmas", "wide"], "value #1 ('wide')"),
        (["--keypoint-sigmas", *map(str, SIGMAS)], "only with --iou-type keypoints, not bbox"),
    ],
)
def test_cli_bad_keypoint_sigmas_exit_2_naming_the_option(keypoint_files, capsys, extra, fragment):
    argv, _, _ = keypoint_files
    assert main(argv + extra) == 2
    error = capsys.readouterr().err
    first, *_ = error.splitlines()
    assert first.startswith("visionflow: error: --keypoint-sigmas: ") and fragment in first
    assert "Traceback" not in error


def test_cli_sigma_count_other_than_the_files_keypoints(keypoint_files, capsys):
    """Four sigmas for files of five keypoints: the ground truth's check, one line, exit 2."""
    argv, _, _ = keypoint_files
    sigmas = [str(sigma) for sigma in SIGMAS[:4]]
    assert main([*argv, "--iou-type", "keypoints", "--keypoint-sigmas", *sigmas]) == 2
    first, *_ = capsys.readouterr().err.splitlines()
    assert first.startswith("visionflow: error: ") and "gt.json: annotation #" in first
    assert "one per keypoint_sigmas (4)" in first
