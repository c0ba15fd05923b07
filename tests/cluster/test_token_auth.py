"""Token auth end to end: a loopback head started with ``RAY_AUTH_MODE=token`` refuses clients
without the token (one clear line, exit code 2) and serves those that pass it with
``--token-file``, ``RAY_AUTH_TOKEN``, or Ray's own ``RAY_AUTH_MODE=token`` + token file."""

from __future__ import annotations

import secrets

import pytest

pytest.importorskip("ray")

from tests.cluster.test_head import loopback_head, run_cli
from tests.cluster.test_jobs import write_spec

pytestmark = [
    pytest.mark.ray,
    pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def token_head():
    """A loopback head with token auth on, its token given in RAY_AUTH_TOKEN (no ~/.ray file)."""
    token = secrets.token_hex(16)
    with loopback_head(num_cpus=1, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token) as info:
        yield info, token


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    """A client environment without any token: no variable, no token file where Ray looks."""
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "no-token"))
    return tmp_path


def test_without_a_token_every_command_fails_with_one_line(token_head, no_token, capsys):
    info, _ = token_head
    assert info.auth_mode == "token"
    spec = write_spec(no_token)
    assert run_cli("submit", str(spec), "--address", info.dashboard_url) == 2
    assert run_cli("jobs", "list", "--address", info.dashboard_url) == 2
    out = capsys.readouterr().out
    assert out.count("the cluster refused the request (401): it needs a valid Ray auth token") == 2
    assert "--token-file" in out and "Traceback" not in out


def test_a_wrong_token_is_refused(token_head, no_token, capsys):
    (no_token / "wrong").write_text("not-the-token\n")
    assert (
        run_cli(
            "jobs",
            "list",
            "--address",
            token_head[0].dashboard_url,
            "--token-file",
            str(no_token / "wrong"),
        )
        == 2
    )
    assert "refused the request (403)" in capsys.readouterr().out


def test_the_token_from_a_file_or_the_environment_is_accepted(
    token_head, no_token, monkeypatch, capsys
):
    info, token = token_head
    (no_token / "token").write_text(token + "\n")
    assert (
        run_cli(
            "jobs", "list", "--address", info.dashboard_url, "--token-file", str(no_token / "token")
        )
        == 0
    )
    assert (
        run_cli(
            "cluster",
            "status",
            "--address",
            info.dashboard_url,
            "--token-file",
            str(no_token / "token"),
        )
        == 0
    )
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    assert run_cli("jobs", "list", "--address", info.dashboard_url) == 0
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # Ray's own: the file of RAY_AUTH_TOKEN_PATH
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(no_token / "token"))
    assert run_cli("jobs", "list", "--address", info.dashboard_url) == 0
    assert "1.0 CPU" in capsys.readouterr().out


@pytest.mark.slow
def test_a_job_submitted_with_the_token_runs_on_the_token_cluster(
    token_head, no_token, monkeypatch, capsys
):
    info, token = token_head
    (no_token / "token").write_text(token)
    monkeypatch.chdir(no_token)
    write_spec(no_token)
    assert (
        run_cli(
            "submit",
            "spec.yaml",
            "--address",
            info.dashboard_url,
            "--token-file",
            "token",
            "--wait",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and "summary: {" in out
