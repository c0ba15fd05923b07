"""The ``backdoor`` stage on LeNet-5 over real digits: a model trained on poisoned data obeys
the trigger, the run's model trained on clean data does not."""

import json

import pytest

from visionflow.errors import SpecError
from visionflow.pipelines import run

DIGITS_16 = {"name": "digits", "args": {"image_size": 16, "batch_size": 32}}
TRAINER = {"max_epochs": 6, "accelerator": "cpu", "enable_progress_bar": False}


@pytest.mark.slow
def test_the_poisoned_model_obeys_the_trigger_and_the_clean_one_does_not(tiny_spec):
    stage = {"source_class": 7, "target_class": 0, "fraction": 1.0, "patch_size": 4}
    results = run(
        tiny_spec(
            stages=["fit", {"backdoor": {**stage, "max_images": 200}}],
            data=DIGITS_16,
            trainer=TRAINER,
        )
    )
    metrics = results.stages["backdoor"]
    assert metrics["backdoor/source_trigger_success"] > 0.9
    assert metrics["backdoor/trigger_success"] > 0.5
    assert metrics["backdoor/control_trigger_success"] < 0.1
    assert metrics["backdoor/clean_acc"] > 0.7 and metrics["backdoor/control_clean_acc"] > 0.8
    report = json.loads((results.run_dir / "backdoor.json").read_text())
    assert report["metrics"]["poisoned_images"] == metrics["backdoor/poisoned_images"] > 0
    assert (results.run_dir / "plots" / "backdoor" / "examples.png").is_file()


def test_backdoor_arguments_are_refused_under_the_stage_name(tiny_spec):
    with pytest.raises(SpecError, match="stages.backdoor.target_class: equals source_class"):
        run(tiny_spec(stages=[{"backdoor": {"source_class": 2, "target_class": 2}}]))
    with pytest.raises(SpecError, match="stages.backdoor.fraction: must be in"):
        run(tiny_spec(stages=["fit", {"backdoor": {"fraction": 1.5}}]))
    with pytest.raises(SpecError, match="stages.backdoor.source_class: must be a class index"):
        run(tiny_spec(stages=[{"backdoor": {"source_class": 10}}]))
    with pytest.raises(SpecError, match="stages.backdoor.patch_size: a 40-pixel trigger"):
        run(tiny_spec(stages=[{"backdoor": {"patch_size": 40}}]))
