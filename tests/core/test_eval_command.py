"""``visionflow eval run``: a spec or a run's checkpoint -> a one-stage evaluate run."""

import json
import re

import pytest
import yaml

from visionflow.cli import main

SPEC = {
    "name": "eval_cli_digits",
    "task": {"name": "image_classification", "args": {"net": "linear"}},
    "data": {"name": "digits", "args": {"batch_size": 128}},
    "trainer": {"max_epochs": 1, "enable_progress_bar": False},
    "stages": ["fit"],
    "resources": {"backend": "local"},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(spec file, the run directory of a one-epoch fit)."""
    folder = tmp_path_factory.mktemp("trained")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "output_dir": str(folder / "runs")}))
    assert main(["run", str(spec)]) == 0
    (run_dir,) = (folder / "runs" / "eval_cli_digits").iterdir()
    return spec, run_dir


def eval_runs(run_dir):
    return sorted((run_dir.parent.parent / "eval_cli_digits_eval").iterdir())


def test_a_checkpoint_alone_is_scored_with_its_run_spec(trained, capsys):
    _, run_dir = trained
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert main(["eval", "run", str(checkpoint), "--shards", "2"]) == 0
    assert "test/acc" in capsys.readouterr().out
    report = json.loads((eval_runs(run_dir)[-1] / "evaluation_test.json").read_text())
    assert report["checkpoint"] == str(checkpoint.resolve()) and len(report["shards"]) == 2


def test_a_spec_with_other_data_and_split(trained, tmp_path):
    spec, run_dir = trained
    data = tmp_path / "data.yaml"
    data.write_text(
        yaml.safe_dump({"name": "digits", "args": {"batch_size": 32, "val_fraction": 0.2}})
    )
    checkpoint = str(run_dir / "checkpoints" / "last.ckpt")
    assert (
        main(
            [
                "eval",
                "run",
                str(spec),
                "--checkpoint",
                checkpoint,
                "--data",
                str(data),
                "--split",
                "val",
                "--set",
                "seed=3",
            ]
        )
        == 0
    )
    latest = eval_runs(run_dir)[-1]
    resolved = yaml.safe_load((latest / "spec.resolved.yaml").read_text())
    assert resolved["data"]["args"]["batch_size"] == 32 and resolved["seed"] == 3
    assert resolved["stages"] == [
        {"evaluate": {"checkpoint": checkpoint, "split": "val", "shards": None}}
    ]
    assert json.loads((latest / "evaluation_val.json").read_text())["num_samples"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "run", "{tmp}/nowhere.ckpt"], "nowhere.ckpt: no such checkpoint"),
        (["eval", "run", "{tmp}/lone.ckpt"], r"no spec.resolved.yaml in the run directory"),
        (
            ["eval", "run", "{tmp}/lone.ckpt", "--checkpoint", "x.ckpt"],
            "the source is already a checkpoint",
        ),
        (["eval", "run", "{tmp}/missing.yaml"], "missing.yaml: no such spec file"),
        (
            ["eval", "run", "{tmp}/spec.yaml", "--checkpoint", "{tmp}/none.ckpt"],
            "none.ckpt: no such file",
        ),
        (
            ["eval", "run", "{tmp}/spec.yaml", "--shards", "0"],
            r"stages\.evaluate\.shards: must be >= 1",
        ),
        (
            ["eval", "run", "{tmp}/spec.yaml", "--data", "{tmp}/bad_data.yaml"],
            r"data\.args\.batch_sise",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "lone.ckpt").write_bytes(b"")
    (tmp_path / "spec.yaml").write_text(
        yaml.safe_dump({**SPEC, "output_dir": str(tmp_path / "runs")})
    )
    (tmp_path / "bad_data.yaml").write_text(
        yaml.safe_dump({"name": "digits", "args": {"batch_sise": 3}})
    )
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("visionflow: error:") and len(err.strip().splitlines()) <= 2
    assert re.search(message, err)
