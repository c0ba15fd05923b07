import json

import pytest

from visionflow.errors import CheckpointError, SpecError
from visionflow.pipelines import resume, run, run_seeds
from visionflow.rundir import RunDirectory
from visionflow.spec import load_spec


def test_local_run_leaves_a_complete_run_directory(tiny_spec):
    results = run(tiny_spec(stages=["fit", "test", {"knn": {"k": 1}}]))
    path = results.run_dir
    for name in (
        "spec.resolved.yaml",
        "environment.json",
        "metrics.csv",
        "summary.json",
        "transforms.yaml",
        "checkpoints/last.ckpt",
        "plots/loss.png",
        "plots/confusion_matrix.png",
    ):
        assert (path / name).is_file(), f"missing {name}"
    assert list((path / "tensorboard").iterdir()), "no TensorBoard events"
    summary = json.loads((path / "summary.json").read_text())
    assert set(summary["stages"]) == {"fit", "test", "knn"}
    assert 0.0 <= summary["metrics"]["test/acc"] <= 1.0
    assert summary["metrics"]["knn/test_acc"] > 0.9  # 1-NN on digits pixels is a strong baseline
    assert RunDirectory.open(path).status()["state"] == "completed"


def test_resolved_spec_has_every_default_and_reruns(tiny_spec):
    results = run(tiny_spec())
    resolved = load_spec(results.run_dir / "spec.resolved.yaml")
    assert "optimizer" in resolved.task.args and "num_classes" not in resolved.task.args
    assert "val_fraction" in resolved.data.args or "batch_size" in resolved.data.args


def test_same_seed_same_metrics_on_cpu(tiny_spec):
    first = run(tiny_spec()).metrics
    second = run(tiny_spec()).metrics
    assert first["test/acc"] == second["test/acc"]
    assert first["test/loss"] == second["test/loss"]
    other = run(tiny_spec(seed=1)).metrics
    assert other["test/loss"] != first["test/loss"]


def test_seeds_summary_has_mean_and_std(tiny_spec):
    results = run_seeds(tiny_spec(), 2)
    summary = json.loads((results.run_dir / "seeds_summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    stats = summary["metrics"]["test/acc"]
    assert len(stats["values"]) == 2
    assert stats["mean"] == pytest.approx(sum(stats["values"]) / 2)
    assert (results.run_dir / "seed_1").is_dir()


def test_ray_backend_needs_the_cluster_package(tiny_spec):
    with pytest.raises(SpecError, match="resources.backend: 'ray' needs the Ray backend"):
        run(tiny_spec(resources={"backend": "ray"}))


def test_resume_refuses_a_completed_run(tiny_spec):
    results = run(tiny_spec(stages=["fit"]))
    with pytest.raises(CheckpointError, match="already completed"):
        resume(results.run_dir)
