"""The evaluate stage: shards of whole batches, scored by the task's evaluator, equal to one shard."""

from __future__ import annotations

import json

import pytest
import torch

from visionflow.errors import SpecError
from visionflow.pipelines import run
from visionflow.pipelines.evaluation import autocast, plan_shards


@pytest.mark.parametrize(
    "samples, batch, shards",
    [
        (360, 64, 3),
        (360, 64, 6),
        (360, 64, 7),
        (360, 64, 100),
        (10, 64, 4),
        (128, 64, 2),
        (1, 1, 1),
    ],
)
def test_shards_start_on_batch_boundaries_and_cover_every_sample_once(samples, batch, shards):
    ranges = plan_shards(samples, batch, shards)
    covered = [i for r in ranges for i in r]
    assert covered == list(range(samples))
    assert all(r.start % batch == 0 for r in ranges)
    batches = -(-samples // batch)
    assert len(ranges) == min(shards, batches)
    sizes = [-(-len(r) // batch) for r in ranges]  # batches per shard
    assert max(sizes) - min(sizes) <= 1


def test_shards_must_be_positive():
    with pytest.raises(SpecError, match=r"stages\.evaluate\.shards: must be >= 1, got 0"):
        plan_shards(100, 10, 0)


def test_sharded_evaluation_equals_one_shard_exactly(tiny_spec):
    """Same checkpoint, 1 shard vs 4: the same metrics bit for bit, every sample once; and the
    numbers agree with the Lightning test loop's."""
    trained = run(tiny_spec(stages=["fit", "test", {"evaluate": {"shards": 1}}]))
    checkpoint = str(trained.run_dir / "checkpoints" / "last.ckpt")
    sharded = run(tiny_spec(stages=[{"evaluate": {"checkpoint": checkpoint, "shards": 4}}]))
    one = trained.stages["evaluate"]
    assert set(one) == {"test/acc", "test/acc_top5", "test/loss"}
    assert sharded.stages["evaluate"] == one  # exact, not approx
    assert one["test/acc"] == pytest.approx(trained.stages["test"]["test/acc"], abs=1e-6)
    assert one["test/loss"] == pytest.approx(trained.stages["test"]["test/loss"], rel=1e-5)

    report = json.loads((sharded.run_dir / "evaluation_test.json").read_text())
    assert [s["shard"] for s in report["shards"]] == [0, 1, 2, 3]
    samples = report["num_samples"]
    assert sum(s["samples"] for s in report["shards"]) == samples > 300
    assert report["checkpoint"] == checkpoint
    matrix = (sharded.run_dir / "plots" / "evaluate_test" / "confusion_matrix.csv").read_text()
    assert sum(int(v) for line in matrix.splitlines()[1:] for v in line.split(",")[1:]) == samples


def test_evaluate_scores_the_val_split_too(tiny_spec):
    results = run(tiny_spec(stages=[{"evaluate": {"split": "val", "shards": 2}}]))
    assert set(results.stages["evaluate"]) == {"val/acc", "val/acc_top5", "val/loss"}
    assert 0.0 <= results.stages["evaluate"]["val/acc"] <= 1.0


def test_precision_without_an_inference_form_is_refused():
    with pytest.raises(SpecError, match=r"trainer\.precision: '64-true' is not supported"):
        autocast("64-true", torch.device("cpu"))
    assert autocast("bf16-mixed", torch.device("cpu")).fast_dtype == torch.bfloat16
