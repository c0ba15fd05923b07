"""Evaluation on Ray: the evaluate stage's shards as Ray tasks, COCO matching in Ray tasks.
Both must give exactly what one process gives."""

from __future__ import annotations

import json

import pytest

import visionflow.cluster  # noqa: F401  (before ray: sets Ray's log filter at ray's import)

pytest.importorskip("ray")

from benchmarks.coco_data import synthetic_coco
from tests.evaluation.test_keypoint_sigmas import SIGMAS, pycocotools_stats, scored_case
from visionflow import cluster
from visionflow.cli import main
from visionflow.errors import SpecError
from visionflow.evaluation.coco import evaluate_coco
from visionflow.pipelines import run as run_local
from visionflow.spec import parse_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_session():
    with cluster.embedded_ray(num_cpus=2):
        yield


def digits_spec(tmp_path, stages, backend="local", trainer=None, **resources):
    return parse_spec(
        {
            "name": "eval_digits",
            "seed": 0,
            "task": {"name": "image_classification", "args": {"net": "lenet5", "lr": 0.003}},
            "data": {"name": "digits", "args": {"batch_size": 64}},
            "trainer": {
                "max_epochs": 1,
                "accelerator": "cpu",
                "enable_progress_bar": False,
                **(trainer or {}),
            },
            "stages": stages,
            "resources": {"backend": backend, **resources},
            "output_dir": str(tmp_path / "runs"),
        }
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    trained = run_local(digits_spec(tmp_path_factory.mktemp("fit"), ["fit"]))
    return str(trained.run_dir / "checkpoints" / "last.ckpt")


def test_shards_on_ray_equal_one_local_shard_exactly(tmp_path, checkpoint, ray_session):
    stage = {"evaluate": {"checkpoint": checkpoint}}
    local = run_local(digits_spec(tmp_path, [stage]))
    on_ray = cluster.run(digits_spec(tmp_path, [stage], backend="ray", num_workers=3))
    assert on_ray.stages["evaluate"] == local.stages["evaluate"]  # exact
    assert local.stages["evaluate"]["test/acc"] > 0.5
    report = json.loads((on_ray.run_dir / "evaluation_test.json").read_text())
    assert [shard["shard"] for shard in report["shards"]] == [0, 1, 2]  # num_workers shards
    assert sum(shard["samples"] for shard in report["shards"]) == report["num_samples"]


def test_an_error_in_a_shard_comes_back_as_one_line_naming_it(tmp_path, checkpoint, ray_session):
    spec = digits_spec(
        tmp_path,
        [{"evaluate": {"checkpoint": checkpoint, "shards": 2}}],
        backend="ray",
        trainer={"precision": "64-true"},
    )
    with pytest.raises(
        SpecError,
        match=r"trainer\.precision: '64-true' is not supported .*"
        r"\[on evaluation shard [01]\]",
    ):
        cluster.run(spec)


def test_eval_run_command_on_ray(tmp_path, checkpoint, ray_session, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "run", checkpoint, "--backend", "ray", "--shards", "2"]) == 0
    out = capsys.readouterr().out
    assert "shard 2/2 done" in out and "test/acc" in out


def test_coco_matching_in_ray_tasks_equals_one_process(tmp_path, ray_session, capsys):
    gt, dt = synthetic_coco(
        seed=3, images=60, categories=4, dets_per_image=20, gt_per_image=4, adversarial=True
    )
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    assert (
        main(
            [
                "eval",
                "coco",
                "--gt",
                str(tmp_path / "gt.json"),
                "--dt",
                str(tmp_path / "dt.json"),
                "--shards",
                "3",
                "--json",
                str(tmp_path / "out.json"),
            ]
        )
        == 0
    )
    stats = json.loads((tmp_path / "out.json").read_text())["stats"]
    assert stats == evaluate_coco(gt, dt, "bbox").stats.tolist()


def test_coco_keypoints_with_custom_sigmas_in_ray_tasks(tmp_path, ray_session):
    """``--keypoint-sigmas`` reach the Ray tasks: pycocotools' figures with the same sigmas."""
    _, gt, results = scored_case(5)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    argv = ["eval", "coco", "--gt", str(tmp_path / "gt.json"), "--dt", str(tmp_path / "dt.json")]
    argv += ["--iou-type", "keypoints", "--keypoint-sigmas", *map(str, SIGMAS), "--shards", "2"]
    assert main([*argv, "--json", str(tmp_path / "out.json")]) == 0
    stats = json.loads((tmp_path / "out.json").read_text())["stats"]
    assert stats == pycocotools_stats(gt, results, SIGMAS).tolist()


def test_shards_asking_for_missing_gpus_fail_at_once(tmp_path, checkpoint, ray_session):
    spec = digits_spec(
        tmp_path, [{"evaluate": {"checkpoint": checkpoint}}], backend="ray", use_gpu=True
    )
    with pytest.raises(
        SpecError,
        match=r"resources: each evaluation shard needs 1 CPU, 1 GPU "
        r"but the Ray cluster has 2 CPU, 0 GPU",
    ):
        cluster.run(spec)
