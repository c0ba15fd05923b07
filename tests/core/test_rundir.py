import json
import os

import pytest

from visionflow.errors import CheckpointError
from visionflow.rundir import RunDirectory, atomic_write_bytes, atomic_write_json, read_json


def test_create_makes_unique_timestamped_folders_with_the_spec(tmp_path):
    first = RunDirectory.create(tmp_path, "exp", "name: exp\n")
    second = RunDirectory.create(tmp_path, "exp", "name: exp\n")
    assert first.path != second.path
    assert first.path.parent == tmp_path.resolve() / "exp" == second.path.parent
    assert first.spec_path.read_text() == "name: exp\n"
    assert first.status()["state"] == "created"


def test_an_output_dir_under_home_is_made_there(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    run = RunDirectory.create("~/runs", "exp", "name: exp\n")
    assert run.path.parent == tmp_path / "home" / "runs" / "exp"
    assert not (tmp_path / "~").exists()  # not a folder named "~" in the working directory


def test_open_refuses_a_folder_without_a_spec(tmp_path):
    with pytest.raises(CheckpointError, match="not a VisionFlow run directory"):
        RunDirectory.open(tmp_path)


def test_status_keeps_stage_metrics_across_updates(tmp_path):
    run = RunDirectory.create(tmp_path, "exp", "name: exp\n")
    run.write_status("running", {"fit": {"val/acc": 0.5}})
    run.write_status("interrupted")
    status = RunDirectory.open(run.path).status()
    assert status["state"] == "interrupted"
    assert status["stages"] == {"fit": {"val/acc": 0.5}}


def test_atomic_write_leaves_old_content_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"a": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b'{"a": 2')
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "status.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="status.json: not valid JSON"):
        read_json(bad)


def test_environment_records_versions_devices_and_seed(tmp_path):
    run = RunDirectory.create(tmp_path, "exp", "name: exp\n")
    environment = json.loads(run.write_environment(seed=7).read_text())
    assert environment["seed"] == 7
    assert environment["packages"]["torch"]
    assert environment["devices"]["cpu_count"] >= 1
    assert isinstance(environment["command"], list)
