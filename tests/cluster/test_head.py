"""``visionflow cluster start|status|stop``: a real loopback Ray head in a private temp dir."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray")

from visionflow.cluster import head  # noqa: E402
from visionflow.cli.cluster import add_cluster_commands, run  # noqa: E402
from visionflow.errors import VisionFlowError  # noqa: E402


def run_cli(*argv: str) -> int:
    """``visionflow CMD ...`` as the CLI runs it: exit code, errors printed as one line + hint."""
    parser = argparse.ArgumentParser(prog="visionflow")
    add_cluster_commands(parser.add_subparsers(dest="command"))
    try:
        return run(parser.parse_args(list(argv)))
    except VisionFlowError as error:
        print(f"visionflow: error: {error}")
        return error.exit_code


def ray_processes_in(temp_dir: Path) -> list:
    return head._processes_of(Path(temp_dir).resolve())


@pytest.fixture(scope="module")
def head_dir():
    """A head started by ``cluster start`` on free ports; stopped (and checked gone) at the end."""
    temp_dir = Path(tempfile.mkdtemp(prefix="vfh-", dir="/tmp"))
    ports = [str(head.free_port()), str(head.free_port())]
    try:
        assert run_cli("cluster", "start", "--num-cpus", "1", "--port", ports[0],
                       "--dashboard-port", ports[1], "--temp-dir", str(temp_dir)) == 0
        yield temp_dir
    finally:
        head.stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.ray
def test_start_prints_the_submit_address_and_status_shows_resources(head_dir, capsys):
    info = head.read_head(head_dir)
    assert info.dashboard_url.startswith("http://127.0.0.1:") and info.auth_mode == "disabled"
    assert run_cli("cluster", "status", "--temp-dir", str(head_dir)) == 0
    out = capsys.readouterr().out
    assert "Active:" in out and "1.0 CPU" in out


@pytest.mark.ray
def test_a_second_head_in_the_same_temp_dir_is_refused(head_dir, capsys):
    assert run_cli("cluster", "start", "--temp-dir", str(head_dir)) == 2
    assert "already running" in capsys.readouterr().out


@pytest.mark.ray
def test_a_port_in_use_is_refused_before_ray_starts(head_dir, capsys):
    port = head.read_head(head_dir).dashboard_url.rsplit(":", 1)[1]
    other = Path(tempfile.mkdtemp(prefix="vfh-", dir="/tmp"))
    try:
        assert run_cli("cluster", "start", "--dashboard-port", port, "--port",
                       str(head.free_port()), "--temp-dir", str(other)) == 2
        assert f"--dashboard-port {port}: already in use" in capsys.readouterr().out
        assert not ray_processes_in(other)
    finally:
        shutil.rmtree(other, ignore_errors=True)


@pytest.mark.ray
def test_stop_leaves_no_ray_process_and_status_then_says_so(head_dir, capsys):
    assert ray_processes_in(head_dir)
    assert run_cli("cluster", "stop", "--temp-dir", str(head_dir)) == 0
    assert not ray_processes_in(head_dir)
    assert run_cli("cluster", "status", "--temp-dir", str(head_dir)) == 2
    assert "no head is running" in capsys.readouterr().out


def test_a_long_temp_dir_is_refused(capsys):
    assert run_cli("cluster", "start", "--temp-dir", "/tmp/" + "x" * 60) == 2
    assert "longer than" in capsys.readouterr().out


def test_a_head_beyond_loopback_needs_a_token(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    with pytest.raises(head.ClusterError, match="needs a Ray auth token"):
        head.head_environment("10.0.0.5")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    assert head.head_environment("10.0.0.5")["RAY_AUTH_MODE"] == "token"
    assert head.head_environment(head.LOOPBACK)["RAY_AUTH_MODE"] == "disabled"
