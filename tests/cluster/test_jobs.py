"""``visionflow submit`` and ``visionflow jobs ...`` against a real loopback Ray head (one per
module): a digits job runs to SUCCEEDED, a job reads its data from the uploaded working dir, a
long one is STOPPED, a failing one shows its logs, and bad input fails fast with one line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from tests.cluster.test_head import loopback_head, run_cli
from tests.datamodules.test_image_folder import write_folder
from visionflow.cluster import head, jobs
from visionflow.cluster.job_entry import SPEC_ENV, load_job_spec
from visionflow.spec import load_spec

# Ray's own log-tailing client (aiohttp's ws_connect(ssl=None)), not ours
pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

SPEC = {
    "name": "digits_linear_job",
    "task": {"name": "image_classification", "args": {"net": "linear"}},
    "data": {"name": "digits", "args": {"batch_size": 64, "image_size": 8}},
    "trainer": {"max_epochs": 1},
    "stages": ["fit", "test"],
    "resources": {"backend": "local"},
    "output_dir": "runs",
}


def write_spec(folder: Path, **changes) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


@pytest.fixture(scope="module")
def address():
    with loopback_head() as info:
        yield info.dashboard_url


def wait_for_status(client, job_id: str, wanted: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    status = str(jobs.job_info(client, job_id).status)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(jobs.job_info(client, job_id).status)
    return status


@pytest.mark.ray
def test_submit_wait_runs_the_spec_and_writes_its_run_directory(
    address, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    write_spec(tmp_path)
    assert run_cli("submit", "spec.yaml", "--address", address, "--wait", "--set", "seed=3") == 0
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and "summary: {" in out
    run_dir = Path(out.split("run directory: ")[1].splitlines()[0])
    assert run_dir.parent.parent == tmp_path / "runs"  # output_dir resolved on this side
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["seed"] == 3 and 0.0 <= summary["metrics"]["test/acc"] <= 1.0
    assert run_cli("jobs", "list", "--address", address) == 0
    assert "SUCCEEDED  digits_linear_job" in capsys.readouterr().out


@pytest.mark.ray
def test_submit_working_dir_uploads_the_folder_the_spec_reads(
    address, tmp_path, monkeypatch, capsys
):
    project = tmp_path / "project"
    write_folder(project / "images", classes=("ant", "bee"), per_class=4)
    (project / "spec.yaml").write_text(
        yaml.safe_dump(
            {
                **SPEC,
                "name": "folder_job",
                "data": {
                    "name": "image_folder",  # relative: read in the job's copy of project/
                    "args": {
                        "root": "images",
                        "image_size": 8,
                        "batch_size": 4,
                        "test_fraction": 0.25,
                        "val_fraction": 0.25,
                    },
                },
            }
        )
    )
    monkeypatch.chdir(tmp_path)  # no images/ here: only the uploaded folder has it
    assert (
        run_cli(
            "submit",
            "project/spec.yaml",
            "--address",
            address,
            "--working-dir",
            "project",
            "--wait",
        )
        == 0
    )
    out = capsys.readouterr().out
    run_dir = Path(out.split("run directory: ")[1].splitlines()[0])
    assert run_dir.parent.parent == project / "runs"  # output_dir: relative to the working dir
    assert (
        yaml.safe_load((run_dir / "spec.resolved.yaml").read_text())["data"]["args"]["root"]
        == "images"
    )
    assert "test/acc" in json.loads((run_dir / "summary.json").read_text())["metrics"]


@pytest.mark.ray
def test_a_running_job_is_stopped(address, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(write_spec(tmp_path, trainer={"max_epochs": 500}))
    client = jobs.connect(address)
    job_id = jobs.submit_spec(client, spec)
    assert wait_for_status(client, job_id, "RUNNING") == "RUNNING"
    assert run_cli("jobs", "stop", job_id, "--address", address) == 0
    assert wait_for_status(client, job_id, "STOPPED") == "STOPPED"
    assert run_cli("jobs", "status", job_id, "--address", address) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["status"] == "STOPPED"


@pytest.mark.ray
def test_a_failed_job_exits_1_with_its_last_log_lines(address, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_spec(tmp_path, trainer={"max_epochs": 1, "accelerator": "no_such_accelerator"})
    assert run_cli("submit", "spec.yaml", "--address", address, "--wait") == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "last 20 log lines" in out and "no_such_accelerator" in out


@pytest.mark.ray
def test_an_unknown_job_id_is_a_clear_error(address, capsys):
    assert run_cli("jobs", "logs", "raysubmit_nope", "--address", address) == 2
    assert "no job 'raysubmit_nope'" in capsys.readouterr().out


def test_a_bad_spec_fails_before_anything_is_submitted(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "connect", lambda *a: pytest.fail("connected with a bad spec"))
    spec = write_spec(tmp_path)
    assert run_cli("submit", str(spec), "--set", "data.args.batch_sise=3") == 2
    assert (
        "data.args.batch_sise: unknown key; did you mean 'batch_size'?" in capsys.readouterr().out
    )


def test_an_unreachable_address_fails_within_seconds(tmp_path, capsys):
    spec = write_spec(tmp_path)
    start = time.monotonic()
    address = f"http://127.0.0.1:{head.free_port()}"
    assert run_cli("submit", str(spec), "--address", address) == 2
    assert run_cli("jobs", "list", "--address", "127.0.0.1:8265") == 2
    assert time.monotonic() - start < 10
    out = capsys.readouterr().out
    assert (
        f"cannot reach a Ray dashboard at {address}" in out and "needs the dashboard's URL" in out
    )


def test_local_paths_are_made_absolute(tmp_path):
    (tmp_path / "images").mkdir()
    spec = load_spec(write_spec(tmp_path)).replace(
        data=jobs.ComponentSpec("digits", {"root": "images", "preset": "keep"})
    )
    resolved = jobs.with_absolute_paths(spec, tmp_path)
    assert resolved.output_dir == str(tmp_path / "runs")
    assert resolved.data.args == {"root": str(tmp_path / "images"), "preset": "keep"}


def test_an_output_dir_under_home_is_sent_as_the_home_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = load_spec(write_spec(tmp_path)).replace(output_dir="~/runs")
    resolved = jobs.with_absolute_paths(spec, tmp_path / "elsewhere")
    assert resolved.output_dir == str(tmp_path / "home" / "runs")


class RecordingClient:
    def submit_job(self, **kwargs):
        self.kwargs = kwargs
        return "raysubmit_1"


def test_pip_requirements_go_into_the_runtime_env_and_the_job_runs_its_python(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    client = RecordingClient()
    assert jobs.submit_spec(client, spec, pip=["visionflow==0.3.0", "s3fs"]) == "raysubmit_1"
    assert client.kwargs["runtime_env"]["pip"] == ["visionflow==0.3.0", "s3fs"]
    assert client.kwargs["entrypoint"] == "python -m visionflow.cluster.job_entry"
    jobs.submit_spec(client, spec)
    assert "pip" not in client.kwargs["runtime_env"]
    assert client.kwargs["entrypoint"].startswith(sys.executable)


def test_a_uri_output_dir_is_left_as_it_is(tmp_path):
    spec = load_spec(write_spec(tmp_path)).replace(output_dir="s3://bucket/runs")
    assert jobs.with_absolute_paths(spec, tmp_path).output_dir == "s3://bucket/runs"


def test_paths_inside_the_working_dir_stay_relative_to_it(tmp_path):
    (tmp_path / "project" / "images").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    spec = load_spec(write_spec(tmp_path)).replace(
        data=jobs.ComponentSpec(
            "digits", {"root": "images", "labels": "../shared", "preset": "keep"}
        )
    )
    resolved = jobs.with_absolute_paths(spec, tmp_path / "project", tmp_path / "project")
    assert resolved.output_dir == str(tmp_path / "project" / "runs")
    assert resolved.data.args == {
        "root": "images",
        "labels": str(tmp_path / "shared"),
        "preset": "keep",
    }


def test_a_missing_working_dir_fails_before_connecting(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "connect", lambda *a: pytest.fail("connected without a folder"))
    spec = write_spec(tmp_path)
    assert run_cli("submit", str(spec), "--working-dir", str(tmp_path / "absent")) == 2
    assert "--working-dir" in capsys.readouterr().out


def test_the_job_entry_reads_the_spec_from_its_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(SPEC_ENV, load_spec(write_spec(tmp_path)).to_yaml())
    spec = load_job_spec(None, ["trainer.max_epochs=2"])
    assert spec.name == "digits_linear_job" and spec.trainer == {"max_epochs": 2}


def test_a_token_is_sent_as_a_bearer_header(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    assert jobs.auth_headers() == {}
    (tmp_path / "token").write_text("abc\n")
    assert jobs.auth_headers(str(tmp_path / "token")) == {"Authorization": "Bearer abc"}
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token")
    assert jobs.auth_headers() == {"Authorization": "Bearer env-token"}
