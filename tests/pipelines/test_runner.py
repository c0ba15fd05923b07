import json
from pathlib import Path

import pytest

from visionflow import cli
from visionflow.errors import CheckpointError, SpecError
from visionflow.pipelines import resume, run, run_seeds
from visionflow.pipelines.runner import Results, summarize_seeds
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


def test_seed_values_stay_beside_their_seeds_when_one_is_not_finite():
    runs = [
        Results(Path(f"seed_{seed}"), {}, {"loss": loss, "acc": 0.5})
        for seed, loss in enumerate([float("nan"), 0.25, 0.75])
    ]
    summary = summarize_seeds(runs)
    assert summary["loss"] == {
        "mean": 0.5,
        "std": pytest.approx(0.3535534),
        "values": [None, 0.25, 0.75],
    }
    assert summary["acc"]["values"] == [0.5, 0.5, 0.5]


def test_ray_backend_needs_the_cluster_package(tiny_spec):
    with pytest.raises(SpecError, match="resources.backend: 'ray' needs the Ray backend"):
        run(tiny_spec(resources={"backend": "ray"}))


def test_resume_refuses_a_completed_run(tiny_spec):
    results = run(tiny_spec(stages=["fit"]))
    with pytest.raises(CheckpointError, match="already completed"):
        resume(results.run_dir)


def test_a_stage_whose_plots_were_not_written_runs_again_on_resume(tiny_spec, monkeypatch):
    """A run stopped while it wrote the last stage's plots (killed, disk full) ran that stage
    again on resume: it was recorded as done before its plots, so they were never written."""
    from visionflow.tasks.classification import ImageClassificationTask

    real = ImageClassificationTask.save_artifacts

    def stopped_in_the_test_plots(self, stage, directory):
        if stage == "test":
            raise KeyboardInterrupt  # where a kill would land
        return real(self, stage, directory)

    monkeypatch.setattr(ImageClassificationTask, "save_artifacts", stopped_in_the_test_plots)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_spec())
    spec = tiny_spec()
    (path,) = (Path(spec.output_dir) / spec.name).iterdir()
    assert not (path / "plots" / "confusion_matrix.png").exists()
    monkeypatch.undo()

    resume(path)

    assert (path / "plots" / "confusion_matrix.png").is_file()


def test_an_interrupted_seeds_run_resumes_its_seeds(tiny_spec, monkeypatch):
    """``--resume`` of a ``--seeds`` run stopped in its second seed ran one plain run into the
    parent folder (checkpoints and metrics beside the seeds' folders) and never wrote
    ``seeds_summary.json``; it finishes the seeds, keeping the finished ones."""
    from visionflow.tasks.classification import ImageClassificationTask

    real, tests_run = ImageClassificationTask.save_artifacts, []

    def stopped_in_the_second_seed(self, stage, directory):
        tests_run.extend([stage] if stage == "test" else [])
        if tests_run.count("test") == 2:
            raise KeyboardInterrupt
        return real(self, stage, directory)

    monkeypatch.setattr(ImageClassificationTask, "save_artifacts", stopped_in_the_second_seed)
    with pytest.raises(KeyboardInterrupt):
        run_seeds(tiny_spec(), 2)
    spec = tiny_spec()
    (parent,) = (Path(spec.output_dir) / spec.name).iterdir()
    (first,) = (parent / "seed_0").iterdir()
    first_summary = (first / "summary.json").read_text()
    monkeypatch.undo()

    assert cli.main(["run", "--resume", str(parent)]) == 0

    summary = json.loads((parent / "seeds_summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["metrics"]["test/acc"]["values"]) == 2
    assert not (parent / "checkpoints").exists() and not (parent / "metrics.csv").exists()
    assert (first / "summary.json").read_text() == first_summary  # seed 0 was not run again
    assert [Path(run).parent.name for run in summary["runs"]] == ["seed_0", "seed_1"]
    assert RunDirectory.open(parent).status()["state"] == "completed"


def test_run_seeds_refuses_seeds_past_the_largest_before_anything(tiny_spec):
    spec = tiny_spec().replace(seed=2**32 - 2)
    with pytest.raises(SpecError, match=r"--seeds 3: the seeds 4294967294..4294967296 go past"):
        run_seeds(spec, 3)
    assert not Path(spec.output_dir).exists()
