"""The command line: exit codes, one-line errors, listings, a real run."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT
from visionflow import __version__
from visionflow.cli import main
from visionflow.errors import SpecError

SPEC = {
    "name": "cli_digits",
    "task": {"name": "image_classification", "args": {"net": "linear"}},
    "data": {"name": "digits", "args": {"batch_size": 128}},
    "trainer": {"max_epochs": 1, "enable_progress_bar": False},
    "stages": ["fit", "test"],
}


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "output_dir": str(tmp_path / "runs")}))
    return path


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"visionflow {__version__}"


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().out


def test_list_shows_registered_names_and_descriptions(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading in ("tasks:", "datamodules:", "nets:", "transforms:", "stages:"):
        assert heading in out
    assert "image_classification" in out and "digits" in out and "lenet5" in out


def test_bad_key_is_one_line_with_hint_and_exit_2(spec_file, capsys):
    code = main(["run", str(spec_file), "--set", "data.args.batch_sise=8"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[0] == (
        f"visionflow: error: {spec_file}: data.args.batch_sise: "
        "unknown key; did you mean 'batch_size'?"
    )
    assert err.splitlines()[1].startswith("  hint: ")
    assert "Traceback" not in err


def test_missing_spec_file_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_debug_shows_the_exception(spec_file):
    with pytest.raises(SpecError):
        main(["--debug", "run", str(spec_file), "--set", "seed=abc"])


def test_resume_takes_no_spec(spec_file, capsys):
    assert main(["run", str(spec_file), "--resume", "somewhere"]) == 2
    assert "--resume takes the run directory alone" in capsys.readouterr().err


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a VisionFlow run directory" in capsys.readouterr().err


def test_run_prints_a_summary_and_the_run_directory(spec_file, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "visionflow", "run", str(spec_file), "--backend", "local"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "test/acc" in result.stdout
    run_dir = next((tmp_path / "runs" / "cli_digits").iterdir())
    assert f"run directory: {run_dir}" in result.stdout.replace("\n", "")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "test/acc" in summary["metrics"]


def test_subcommand_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_eval_coco_is_wired_and_bad_input_exits_2(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(
        '{"images": [{"id": 1, "width": 10, "height": 10}], "annotations": [], '
        '"categories": [{"id": 1, "name": "a"}]}'
    )
    dt = tmp_path / "dt.json"
    dt.write_text('[{"image_id": 7, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.5}]')
    assert main(["eval", "coco", "--gt", str(gt), "--dt", str(dt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("visionflow: error: ") and "7" in err and "Traceback" not in err


def test_data_make_shapes_writes_a_coco_dataset(tmp_path, capsys):
    assert (
        main(
            ["data", "make-shapes", str(tmp_path / "shapes"), "--images", "3", "--image-size", "64"]
        )
        == 0
    )
    dataset = json.loads((tmp_path / "shapes" / "annotations.json").read_text())
    assert len(dataset["images"]) == 3 and dataset["annotations"]
    assert len(list((tmp_path / "shapes" / "images").glob("*.png"))) == 3
    assert main(["data", "make-shapes", str(tmp_path / "bad"), "--images", "0"]) == 2


def test_eval_coco_imports_only_what_it_needs(tmp_path):
    """`visionflow eval coco` starts small: no torch, Lightning, Ray, matplotlib or YAML, and no
    other command's module (only the chosen command's parser is built)."""
    gt = tmp_path / "gt.json"
    gt.write_text(
        '{"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}], '
        '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], '
        '"area": 16, "iscrowd": 0}]}'
    )
    dt = tmp_path / "dt.json"
    dt.write_text('[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9}]')
    argv = ["eval", "coco", "--gt", str(gt), "--dt", str(dt), "--json", str(tmp_path / "out.json")]
    program = (
        "import sys; from visionflow.cli import main; "
        f"code = main({argv + ['--per-category']!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'lightning', 'ray', 'matplotlib', 'yaml') or m in "
        "('visionflow.cli.run', 'visionflow.cli.data', 'visionflow.cli.cluster', "
        "'visionflow.cli.eval_run', 'visionflow.cluster'))); sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Average Precision" in result.stdout
    assert result.stdout.splitlines()[-1] == "[]"
