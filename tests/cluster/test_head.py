"""``visionflow cluster start|status|stop``: a real loopback Ray head in a private temp dir."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

from visionflow.cli.cluster import add_cluster_commands, run
from visionflow.cluster import head
from visionflow.errors import VisionFlowError


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
    info = head.read_head(Path(temp_dir).resolve())
    return head.head_processes(info) if info is not None else []


@contextlib.contextmanager
def loopback_head(num_cpus: int = 2, **environment: str) -> Iterator[head.HeadInfo]:
    """A head started on free loopback ports (with ``environment`` set while it starts); stopped,
    checked gone and its temp dir removed on exit."""
    temp_dir = Path(tempfile.mkdtemp(prefix="vfh-", dir="/tmp"))
    try:
        with pytest.MonkeyPatch.context() as env:
            for name, value in environment.items():
                env.setenv(name, value)
            info = head.start_head(
                head.HeadConfig(
                    num_cpus=num_cpus,
                    port=head.free_port(),
                    dashboard_port=head.free_port(),
                    temp_dir=str(temp_dir),
                )
            )
        yield info
    finally:
        head.stop_head(temp_dir)
        assert not ray_processes_in(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped IPv6 loopback (``::ffff:127.0.0.1``)."""
    address = ipaddress.ip_address(ip)
    return address.is_loopback or bool(
        getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback
    )


def decoy(*words: str) -> subprocess.Popen:
    """A process of this user whose command line holds ``words`` (but is no part of a head)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *words])


@pytest.fixture(scope="module")
def head_dir():
    """A head started by ``cluster start`` on free ports; stopped (and checked gone) at the end."""
    temp_dir = Path(tempfile.mkdtemp(prefix="vfh-", dir="/tmp"))
    ports = [str(head.free_port()), str(head.free_port())]
    try:
        assert (
            run_cli(
                "cluster",
                "start",
                "--num-cpus",
                "1",
                "--port",
                ports[0],
                "--dashboard-port",
                ports[1],
                "--temp-dir",
                str(temp_dir),
            )
            == 0
        )
        yield temp_dir
    finally:
        head.stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.ray
def test_start_prints_the_submit_address_and_status_shows_resources(head_dir, capsys):
    info = head.read_head(head_dir)
    assert info.auth_mode == "disabled"
    assert run_cli("cluster", "status", "--temp-dir", str(head_dir)) == 0
    out = capsys.readouterr().out
    assert "Active:" in out and "1.0 CPU" in out


@pytest.mark.ray
def test_every_socket_of_the_head_listens_on_loopback_only(head_dir):
    """What the sockets are bound to, read from the kernel: not the URL the code wrote down."""
    import psutil

    pids = {process.pid for process in ray_processes_in(head_dir)}
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]
    assert len({c.pid for c in listening}) >= 3  # GCS, raylet, dashboard at least
    assert all(is_loopback(c.laddr.ip) for c in listening), listening
    dashboard_port = int(head.read_head(head_dir).dashboard_url.rsplit(":", 1)[1])
    assert dashboard_port in {c.laddr.port for c in listening}


@pytest.mark.ray
def test_a_second_head_in_the_same_temp_dir_is_refused(head_dir, capsys):
    assert run_cli("cluster", "start", "--temp-dir", str(head_dir)) == 2
    assert "already running" in capsys.readouterr().out


@pytest.mark.ray
def test_a_port_in_use_is_refused_before_ray_starts(head_dir, capsys):
    port = head.read_head(head_dir).dashboard_url.rsplit(":", 1)[1]
    other = Path(tempfile.mkdtemp(prefix="vfh-", dir="/tmp"))
    try:
        assert (
            run_cli(
                "cluster",
                "start",
                "--dashboard-port",
                port,
                "--port",
                str(head.free_port()),
                "--temp-dir",
                str(other),
            )
            == 2
        )
        assert f"--dashboard-port {port}: already in use" in capsys.readouterr().out
        assert not ray_processes_in(other)
    finally:
        shutil.rmtree(other, ignore_errors=True)


@pytest.mark.ray
def test_stop_leaves_no_ray_process_and_status_then_says_so(head_dir, capsys):
    info = head.read_head(head_dir)
    # processes that name the head's temp dir, a longer one, or a port that starts like its own
    decoys = [
        decoy(str(head_dir)),
        decoy(f"{head_dir}2"),
        decoy(f"--address={info.gcs_address}0"),
        decoy(f"--temp-dir={head_dir}"),
    ]
    try:
        processes = ray_processes_in(head_dir)
        assert processes and not {d.pid for d in decoys} & {p.pid for p in processes}
        assert run_cli("cluster", "stop", "--temp-dir", str(head_dir)) == 0
        assert not any(p.is_running() for p in processes)
        assert [d.poll() for d in decoys] == [None] * len(decoys)  # all still running
    finally:
        for process in decoys:
            process.kill()
            process.wait()
    assert not ray_processes_in(head_dir)
    assert run_cli("cluster", "status", "--temp-dir", str(head_dir)) == 2
    assert "no head is running" in capsys.readouterr().out


def test_a_long_temp_dir_is_refused(capsys):
    assert run_cli("cluster", "start", "--temp-dir", "/tmp/" + "x" * 60) == 2
    assert "longer than" in capsys.readouterr().out


def test_a_head_beyond_loopback_needs_a_token(monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # an environment must not switch auth off
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    with pytest.raises(head.ClusterError, match="needs a Ray auth token"):
        head.head_environment("10.0.0.5")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    assert head.head_environment("10.0.0.5")["RAY_AUTH_MODE"] == "token"
    assert head.head_environment(head.LOOPBACK)["RAY_AUTH_MODE"] == "disabled"


def test_only_an_explicit_flag_starts_a_head_beyond_loopback_without_auth(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    assert head.head_environment("10.0.0.5", insecure_no_auth=True)["RAY_AUTH_MODE"] == "disabled"
    started = []

    def start_head(config):  # what the CLI asks for, and the warning it prints; no Ray
        started.append(config)
        return head.HeadInfo(
            "10.0.0.5:6379",
            "http://10.0.0.5:8265",
            str(tmp_path),
            head.head_environment(config.host, config.insecure_no_auth)["RAY_AUTH_MODE"],
        )

    monkeypatch.setattr(head, "start_head", start_head)
    assert run_cli("cluster", "start", "--host", "10.0.0.5") == 2
    assert "needs a Ray auth token" in capsys.readouterr().out
    assert run_cli("cluster", "start", "--host", "10.0.0.5", "--insecure-no-auth") == 0
    assert started[-1].insecure_no_auth
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "NO authentication" in warning[0]
