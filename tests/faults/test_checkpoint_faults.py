"""A truncated or corrupt checkpoint, wherever it is given (``--resume``, ``eval run``,
``task.args.weights``), is one line naming the file; nothing trains and nothing is overwritten."""

from __future__ import annotations

import torch

from tests.faults.conftest import TINY
from visionflow import cli
from visionflow.pipelines.build import resolve_spec
from visionflow.rundir import RunDirectory
from visionflow.spec import parse_spec


def truncated_checkpoint(path):
    """A real-looking Lightning checkpoint, cut in half."""
    torch.save({"state_dict": {"w": torch.zeros(64, 64)}, "epoch": 0}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def interrupted_run(tmp_path, stages=("fit",)):
    """A run directory left by a killed fit whose ``last.ckpt`` is truncated."""
    spec = resolve_spec(
        parse_spec({**TINY, "output_dir": str(tmp_path / "runs"), "stages": list(stages)})
    )
    run_dir = RunDirectory.create(spec.output_dir, spec.name, spec.to_yaml())
    run_dir.checkpoints.mkdir(parents=True, exist_ok=True)
    truncated_checkpoint(run_dir.checkpoints / "last.ckpt")
    run_dir.write_status("interrupted", {})
    return run_dir


def one_error_line(capsys, *argv) -> str:
    code = cli.main(list(argv))
    errors = capsys.readouterr().err
    lines = [line for line in errors.strip().splitlines() if not line.startswith("  hint:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in errors, errors
    return lines[0]


def test_resume_from_a_truncated_last_checkpoint(tmp_path, capsys):
    run_dir = interrupted_run(tmp_path)
    line = one_error_line(capsys, "run", "--resume", str(run_dir.path))
    assert f"{run_dir.checkpoints / 'last.ckpt'}: cannot read the checkpoint" in line
    assert not (run_dir.path / "metrics.csv").exists()  # no fit started


def test_resume_after_the_fit_with_a_truncated_best_checkpoint(tmp_path, capsys):
    run_dir = interrupted_run(tmp_path, stages=("fit", "test"))
    run_dir.write_status("interrupted", {"fit": {"val/acc": 0.5}})
    line = one_error_line(capsys, "run", "--resume", str(run_dir.path))
    assert f"{run_dir.checkpoints / 'last.ckpt'}: cannot read the checkpoint" in line


def test_eval_run_of_a_truncated_checkpoint(tmp_path, capsys):
    run_dir = interrupted_run(tmp_path)
    checkpoint = run_dir.checkpoints / "last.ckpt"
    line = one_error_line(
        capsys, "eval", "run", str(checkpoint), "--set", f"output_dir={tmp_path / 'eval'}"
    )
    assert f"{checkpoint}: cannot read the checkpoint" in line


def test_corrupt_weights_file(tmp_path, capsys):
    weights = tmp_path / "lenet.pth"
    weights.write_bytes(b"\x00garbage, not a zip or a pickle")
    spec = tmp_path / "spec.yaml"
    spec.write_text(parse_spec({**TINY, "output_dir": str(tmp_path / "runs")}).to_yaml())
    line = one_error_line(capsys, "run", str(spec), "--set", f"task.args.weights={weights}")
    assert f"weights: {weights}: cannot load it" in line
    assert not (tmp_path / "runs").exists()  # refused before the run
