"""Every error path of the pipeline spec, and its round trip through YAML."""

import re

import pytest
import yaml

from visionflow.errors import SpecError, UnknownNameError, VisionFlowDeprecation
from visionflow.spec import apply_overrides, load_spec, parse_spec

VALID = {
    "name": "digits",
    "seed": 3,
    "task": {"name": "image_classification", "args": {"net": "lenet5", "optimizer": {"lr": 0.01}}},
    "data": {"name": "digits", "args": {"batch_size": 32}},
    "trainer": {"max_epochs": 2},
    "stages": ["fit", "test", {"knn": {"k": 3}}],
    "resources": {"backend": "local"},
}


def with_changes(**changes):
    raw = yaml.safe_load(yaml.safe_dump(VALID))
    raw.update(changes)
    return raw


def error_of(raw) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(raw, source="spec.yaml")
    return info.value


def test_valid_spec_parses_and_round_trips():
    spec = parse_spec(VALID)
    assert spec.task.args == {"net": "lenet5", "optimizer": {"lr": 0.01}}
    assert [s.name for s in spec.stages] == ["fit", "test", "knn"]
    assert spec.stages[2].args == {"k": 3}
    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec


def test_unknown_top_level_key_suggests():
    error = error_of(with_changes(trainr={}))
    assert error.message == "spec.yaml: trainr: unknown key; did you mean 'trainer'?"


def test_misspelled_data_arg_names_its_path():
    raw = with_changes(data={"name": "digits", "args": {"batch_sise": 32}})
    assert "data.args.batch_sise: unknown key; did you mean 'batch_size'?" in error_of(raw).message


def test_misspelled_task_arg_names_its_path():
    raw = with_changes(task={"name": "image_classification", "args": {"nett": "lenet5"}})
    assert "task.args.nett: unknown key; did you mean 'net'?" in error_of(raw).message


def test_wrong_type_names_key_expected_and_got():
    raw = with_changes(task={"name": "image_classification", "args": {"optimizer": {"lr": "fast"}}})
    assert "task.args.optimizer.lr: expected float, got a str ('fast')" in error_of(raw).message


def test_literal_value_out_of_choices():
    raw = with_changes(resources={"backend": "slurm"})
    assert (
        "resources.backend: expected 'local' or 'ray', got a str ('slurm')" in error_of(raw).message
    )


def test_unknown_task_name_suggests_and_hints_list():
    error = error_of(with_changes(task={"name": "image_clasification"}))
    assert isinstance(error, UnknownNameError)
    assert (
        "task.name: unknown task 'image_clasification'; did you mean 'image_classification'"
        in error.message
    )
    assert "visionflow list tasks" in error.hint


def test_unknown_stage_suggests():
    assert (
        "stages[1]: unknown stage 'tset'; did you mean 'test'?"
        in error_of(with_changes(stages=["fit", "tset"])).message
    )


def test_stage_argument_checked_against_its_signature():
    assert (
        "stages[0].knn.kk: unknown key; did you mean 'k'?"
        in error_of(with_changes(stages=[{"knn": {"kk": 3}}])).message
    )


def test_missing_required_keys():
    raw = with_changes()
    del raw["task"]
    assert "task: required key is missing" in error_of(raw).message
    assert "data.name: required key is missing" in error_of(with_changes(data={"args": {}})).message


def test_trainer_keys_are_lightning_trainer_arguments():
    assert (
        "trainer.max_epoch: unknown key; did you mean 'max_epochs'"
        in error_of(with_changes(trainer={"max_epoch": 3})).message
    )
    assert (
        "trainer.logger: set by VisionFlow"
        in error_of(with_changes(trainer={"logger": False})).message
    )


def test_empty_stages_and_bad_stage_shape():
    assert "stages: empty list" in error_of(with_changes(stages=[])).message
    assert "stages[0]: expected a stage name" in error_of(with_changes(stages=[["fit"]])).message


def test_task_datamodule_mismatch_is_refused():
    from visionflow.batches import DetectionBatch
    from visionflow.registry import DATAMODULES

    DATAMODULES.add(
        "test_only_detection_data",
        lambda batch_size=1: None,
        description="detection stand-in",
        batch=DetectionBatch,
    )
    try:
        error = error_of(with_changes(data={"name": "test_only_detection_data"}))
    finally:
        del DATAMODULES._entries["test_only_detection_data"]
    assert (
        "yields DetectionBatch but task 'image_classification' consumes "
        "ImageClassificationBatch" in error.message
    )
    assert "digits" in error.hint


def test_name_must_be_a_plain_name():
    assert "must be a non-empty name without '/'" in error_of(with_changes(name="a/b")).message


def test_overrides_set_nested_keys_with_yaml_values():
    raw = apply_overrides(
        VALID,
        [
            "data.args.batch_size=8",
            "trainer.max_epochs=1",
            "task.args.net_args.hidden=[64, 32]",
            "stages.1=validate",
        ],
    )
    assert raw["data"]["args"]["batch_size"] == 8
    assert raw["task"]["args"]["net_args"] == {"hidden": [64, 32]}
    assert raw["stages"][1] == "validate"
    assert VALID["data"]["args"]["batch_size"] == 32  # the input is not modified


@pytest.mark.parametrize(
    "item, message",
    [
        ("novalue", "expected KEY.PATH=VALUE"),
        ("stages.9=fit", "stages.9: index out of range"),
        ("name.x=1", "name is a str ('digits'), not a mapping"),
    ],
)
def test_bad_overrides(item, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        apply_overrides(VALID, [item])


def test_override_typo_is_caught_by_validation(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(VALID))
    with pytest.raises(SpecError, match="data.args.batch_sise: unknown key; did you mean"):
        load_spec(path, ["data.args.batch_sise=8"])


def test_load_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_spec(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a mapping of keys, got a list"):
        load_spec(listing)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_spec(path)


def test_example_specs_are_valid():
    from tests.conftest import REPO_ROOT

    examples = sorted((REPO_ROOT / "examples").glob("*.yaml"))
    assert examples, "no example specs found"
    for path in examples:
        load_spec(path)


def test_resources_for_ray_train():
    spec = parse_spec(
        with_changes(
            resources={
                "backend": "ray",
                "num_workers": 2,
                "placement": "spread",
                "max_failures": 2,
                "use_gpu": True,
                "gpus_per_worker": 0.5,
            }
        )
    )
    assert (spec.resources.placement, spec.resources.max_failures) == ("spread", 2)
    assert (
        "resources.placement: expected 'pack' or 'spread'"
        in error_of(with_changes(resources={"placement": "scatter"})).message
    )
    assert "max_failures >= 0" in error_of(with_changes(resources={"max_failures": -1})).message


def test_fsdp_needs_gpus():
    spec = parse_spec(
        with_changes(resources={"backend": "ray", "use_gpu": True, "strategy": "fsdp"})
    )
    assert spec.resources.strategy == "fsdp"
    error = error_of(with_changes(resources={"backend": "ray", "strategy": "fsdp"}))
    assert "resources.strategy: fsdp shards the model over GPUs" in error.message
    assert "use_gpu: true" in error.hint
    assert (
        "expected 'ddp' or 'fsdp'"
        in error_of(with_changes(resources={"strategy": "zero3"})).message
    )


def test_sweep_section_is_checked_path_by_path():
    spec = parse_spec(
        with_changes(
            sweep={
                "parameters": {"task.args.optimizer.lr": {"loguniform": [1e-4, 1e-2]}},
                "metric": "val/acc",
                "mode": "max",
            }
        )
    )
    assert spec.sweep.parameters == {"task.args.optimizer.lr": {"loguniform": [1e-4, 1e-2]}}
    assert parse_spec(yaml.safe_load(spec.to_yaml())) == spec
    bad_path = with_changes(sweep={"parameters": {"task.args.optimizer.lrr": {"grid": [0.1]}}})
    assert (
        "sweep.parameters.task.args.optimizer.lrr: task.args.optimizer.lrr: unknown key; "
        "did you mean 'lr'?"
    ) in error_of(bad_path).message
    bad_type = with_changes(sweep={"parameters": {"task.args.optimizer.lr": {"grid": ["fast"]}}})
    assert "expected float, got a str ('fast')" in error_of(bad_type).message
    bad_sampler = with_changes(sweep={"parameters": {"task.args.optimizer.lr": {"gird": [0.1]}}})
    assert "unknown sampler 'gird'; did you mean 'grid'?" in error_of(bad_sampler).message
    assert (
        "expected [low, high]"
        in error_of(with_changes(sweep={"parameters": {"seed": {"randint": [1]}}})).message
    )


def test_a_sweep_spec_needs_ray_tune_in_python_too():
    from visionflow.pipelines import run

    spec = parse_spec(with_changes(sweep={"parameters": {"seed": {"grid": [0, 1]}}}))
    with pytest.raises(SpecError, match="sweep: a sweep runs its trials on Ray Tune"):
        run(spec)


def test_exponent_floats_are_floats_in_files_and_overrides(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(VALID).replace("lr: 0.01", "lr: 1e-4"))
    assert load_spec(path).task.args["optimizer"]["lr"] == 1e-4
    assert load_spec(path, ["task.args.optimizer.lr=3E-5"]).task.args["optimizer"]["lr"] == 3e-5


def test_flat_optimizer_keys_of_earlier_releases_still_work_with_one_deprecation_line():
    raw = with_changes(
        task={
            "name": "image_classification",
            "args": {"optimizer": "sgd", "lr": 0.1, "warmup_epochs": 1},
        }
    )
    with pytest.warns(VisionFlowDeprecation, match="task.args.lr: moved to task.args.optimizer.lr"):
        spec = parse_spec(raw)
    assert spec.task.args == {
        "optimizer": {"name": "sgd", "lr": 0.1},
        "scheduler": {"warmup_epochs": 1},
    }
    both = with_changes(
        task={"name": "image_classification", "args": {"lr": 0.1, "optimizer": {"lr": 0.2}}}
    )
    with pytest.warns(VisionFlowDeprecation):
        assert "task.args.lr: also set as task.args.optimizer.lr" in error_of(both).message


def test_a_name_alone_sets_the_optimizer_and_is_checked():
    assert parse_spec(
        with_changes(task={"name": "image_classification", "args": {"optimizer": "sgd"}})
    ).task.args == {"optimizer": "sgd"}
    raw = with_changes(task={"name": "image_classification", "args": {"optimizer": "lamb"}})
    assert "task.args.optimizer.name: expected 'sgd' or" in error_of(raw).message
