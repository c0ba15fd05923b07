"""Detection through the pipeline: fit -> evaluate -> predict, then evaluate a checkpoint alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import visionflow.datamodules.shapes  # registers shapes_detection
import visionflow.pipelines.checkpoint_stages  # registers evaluate, predict
import visionflow.tasks.detection  # noqa: F401  (registers object_detection)
from tests.tasks.conftest import FAST_NET
from visionflow.errors import CheckpointError
from visionflow.pipelines import build_datamodule, build_task, resolve_spec, run
from visionflow.spec import parse_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_spec(tmp_path: Path, stages: list) -> object:
    return parse_spec(
        {
            "name": "tiny_shapes",
            "task": {
                "name": "object_detection",
                "args": {"net": "fasterrcnn_mobilenet_v3_large_fpn", "net_args": FAST_NET},
            },
            "data": {
                "name": "shapes_detection",
                "args": {
                    "data_dir": str(tmp_path / "shapes"),
                    "train_images": 4,
                    "val_images": 2,
                    "test_images": 2,
                    "image_size": 64,
                    "batch_size": 2,
                },
            },
            "trainer": {
                "max_epochs": 1,
                "accelerator": "cpu",
                "enable_progress_bar": False,
                "num_sanity_val_steps": 0,
            },
            "stages": stages,
            "output_dir": str(tmp_path / "runs"),
        }
    )


def test_fit_evaluate_predict_then_evaluate_the_checkpoint_alone(tmp_path):
    trained = run(tiny_spec(tmp_path, ["fit", {"evaluate": {"split": "test"}}, "predict"]))
    assert "val/mAP" in trained.stages["fit"]
    assert {"test/mAP", "test/AP50", "test/AR100"} <= set(trained.stages["evaluate"])
    assert trained.stages["predict"] == {"predict/batches": 1.0}
    plots = {p.name for p in (trained.run_dir / "plots").iterdir()}
    assert "detections_predict_00.png" in plots
    assert {p.name for p in (trained.run_dir / "plots" / "evaluate_test").iterdir()} == {
        "pr_by_iou.png",
        "pr_by_area.png",
        "confusion_matrix.png",
        "tide_errors.png",
    }
    report = json.loads((trained.run_dir / "evaluation_test.json").read_text())
    assert report["num_samples"] == 2 and report["shards"][0]["samples"] == 2
    assert report["metrics"]["mAP"] == trained.stages["evaluate"]["test/mAP"]
    assert report["details"]["stats"][0] == report["metrics"]["mAP"]
    results = json.loads((trained.run_dir / "predictions.json").read_text())
    assert all(set(r) == {"image_id", "category_id", "score", "bbox"} for r in results)

    checkpoint = trained.run_dir / "checkpoints" / "last.ckpt"
    alone = run(tiny_spec(tmp_path, [{"evaluate": {"checkpoint": str(checkpoint), "shards": 2}}]))
    assert alone.stages["evaluate"] == trained.stages["evaluate"]  # 2 shards == 1, exactly


def test_evaluate_refuses_a_checkpoint_that_is_not_one(tmp_path):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="bogus.ckpt: cannot read the checkpoint"):
        run(tiny_spec(tmp_path, [{"evaluate": {"checkpoint": str(bogus)}}]))


def test_the_task_gets_the_dataset_category_ids(tmp_path):
    """The resolved spec must not write the task's default (None) over the data's ids."""
    spec = resolve_spec(tiny_spec(tmp_path, ["fit"]))
    datamodule = build_datamodule(spec)
    datamodule.prepare_data()
    assert build_task(spec, datamodule.info).category_ids == [1, 2, 3]
