"""Run directories on fsspec storage: staged locally, mirrored on every status change, resumable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.pipelines.conftest import TINY_DIGITS
from visionflow.errors import CheckpointError, RunError, SpecError
from visionflow.pipelines import resume, run
from visionflow.registry import STAGES
from visionflow.remote import STAGING_ENV, RemoteMirror
from visionflow.rundir import RunDirectory
from visionflow.spec import parse_spec


@pytest.fixture
def staging(tmp_path, monkeypatch):
    folder = tmp_path / "staging"
    monkeypatch.setenv(STAGING_ENV, str(folder))
    return folder


def spec_to(output_dir: str, stages=("fit", "test")):
    return parse_spec({**TINY_DIGITS, "output_dir": output_dir, "stages": list(stages)})


def remote_files(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_a_run_to_a_uri_lands_there_complete(tmp_path, staging):
    results = run(spec_to(f"file://{tmp_path}/bucket/runs"))
    assert results.remote.startswith(f"file://{tmp_path}/bucket/runs/tiny_digits/")
    assert results.run_dir.is_relative_to(staging)
    remote = tmp_path / results.remote.removeprefix(f"file://{tmp_path}/")
    files = remote_files(remote)
    assert {
        "spec.resolved.yaml",
        "environment.json",
        "status.json",
        "summary.json",
        "metrics.csv",
        "checkpoints/last.ckpt",
    } <= files
    assert not [f for f in files if ".uploading-" in f or f.endswith(".tmp")]
    assert json.loads((remote / "status.json").read_text())["state"] == "completed"
    assert json.loads((remote / "summary.json").read_text())["run_dir"] == results.remote
    assert remote_files(remote) == remote_files(results.run_dir) - {
        f for f in remote_files(results.run_dir) if f.startswith(".")
    }


INTERRUPT = []


@STAGES.register("interrupt_once", description="raises KeyboardInterrupt while INTERRUPT is set")
def interrupt_once(context) -> dict[str, float]:
    if INTERRUPT:
        raise KeyboardInterrupt
    return {}


@pytest.fixture
def interrupting():
    INTERRUPT.append(True)
    yield
    INTERRUPT.clear()


def test_an_interrupted_remote_run_resumes_from_the_uri_alone(tmp_path, staging, interrupting):
    uri = f"file://{tmp_path}/bucket"
    with pytest.raises(KeyboardInterrupt):
        run(spec_to(uri, stages=("fit", "interrupt_once", "test")))
    (run_uri,) = [
        f"{uri}/tiny_digits/{p.name}" for p in (tmp_path / "bucket" / "tiny_digits").iterdir()
    ]
    status = json.loads(
        (tmp_path / run_uri.removeprefix(f"file://{tmp_path}/") / "status.json").read_text()
    )
    assert status["state"] == "interrupted" and "fit" in status["stages"]

    shutil.rmtree(staging)  # a new machine: nothing staged
    INTERRUPT.clear()
    results = resume(run_uri)
    assert "test/acc" in results.metrics and results.remote == run_uri
    remote = tmp_path / run_uri.removeprefix(f"file://{tmp_path}/")
    assert json.loads((remote / "status.json").read_text())["state"] == "completed"
    with pytest.raises(CheckpointError, match="already completed"):
        resume(run_uri)


def test_memory_filesystem_and_incremental_push(tmp_path, staging, monkeypatch):
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "a.txt").write_text("a")
    (local / "sub" / "b.txt").write_text("b")
    (local / ".c.txt.123.tmp").write_text("half-written")
    mirror = RemoteMirror(local, "memory://vf-test/run")
    uploads = []
    real_put = mirror.fs.put_file
    monkeypatch.setattr(
        mirror.fs,
        "put_file",
        lambda src, dst, **kw: (uploads.append(src), real_put(src, dst, **kw)),
    )
    mirror.push()
    assert sorted(uploads) == [str(local / "a.txt"), str(local / "sub" / "b.txt")]
    uploads.clear()
    (local / "a.txt").write_text("changed")
    mirror.push()
    assert uploads == [str(local / "a.txt")]
    assert mirror.fs.cat_file("/vf-test/run/a.txt") == b"changed"
    pulled = RemoteMirror(tmp_path / "pulled", "memory://vf-test/run")
    pulled.pull()
    assert (tmp_path / "pulled" / "sub" / "b.txt").read_text() == "b"


def test_unknown_protocol_and_missing_remote_run(staging):
    with pytest.raises(SpecError, match=r"output_dir: nosuchfs://x/runs/tiny_digits/.*nosuchfs"):
        RunDirectory.create("nosuchfs://x/runs", "tiny_digits", "name: x\n")
    with pytest.raises(SpecError, match=r"memory://vf-none/run: no such run directory"):
        RunDirectory.open("memory://vf-none/run")


def test_a_listing_that_leaves_the_run_directory_is_refused(tmp_path, monkeypatch):
    mirror = RemoteMirror(tmp_path / "staging" / "run", "memory://vf-hostile/run")
    mirror.fs.pipe_file("/vf-hostile/run/status.json", b"{}")
    hostile = {
        "/vf-hostile/run/status.json": {"size": 2, "type": "file"},
        "/vf-hostile/run/../../../escaped.txt": {"size": 1, "type": "file"},
    }
    monkeypatch.setattr(mirror.fs, "find", lambda *args, **kwargs: hostile)
    monkeypatch.setattr(mirror.fs, "get_file", lambda remote, local: Path(local).write_text("x"))
    with pytest.raises(
        RunError,
        match=r"memory://vf-hostile/run: the listing names "
        r"'/vf-hostile/run/../../../escaped.txt', which is outside",
    ):
        mirror.pull()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["status.json"]


def test_a_remote_file_changed_at_the_same_size_is_pulled_again(tmp_path, monkeypatch):
    local = tmp_path / "staging" / "run"
    local.mkdir(parents=True)
    (local / "metrics.csv").write_text("epoch,acc\n0,0.5\n")
    RemoteMirror(local, "memory://vf-same-size/run").push()
    fs = RemoteMirror(local, "memory://vf-same-size/run").fs
    fs.pipe_file("/vf-same-size/run/metrics.csv", b"epoch,acc\n0,0.9\n")  # same size, new content
    RemoteMirror(local, "memory://vf-same-size/run").pull()  # a later --resume
    assert (local / "metrics.csv").read_text() == "epoch,acc\n0,0.9\n"
    downloads = []
    mirror = RemoteMirror(local, "memory://vf-same-size/run")
    real_get = mirror.fs.get_file
    monkeypatch.setattr(
        mirror.fs,
        "get_file",
        lambda remote, path, **kw: (downloads.append(remote), real_get(remote, path, **kw)),
    )
    mirror.pull()  # nothing changed since
    assert downloads == []
