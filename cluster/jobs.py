"""Pipelines as Ray Jobs: submit a spec to a head's Jobs API, follow it, list, stop.

    client = connect("http://127.0.0.1:8265")          # probes first: an error in 5 s, no hang
    spec = load_spec("examples/digits_classification.yaml", ["trainer.max_epochs=1"])
    job_id = submit_spec(client, spec)
    wait_for_job(client, job_id)                        # follows the logs; JobFailedError if not
                                                        # SUCCEEDED (with its last log lines)

The caller validates the spec first (``load_spec``: a bad spec never reaches the cluster); its
local paths are made absolute, and the resolved YAML travels in the job's runtime_env (``VISIONFLOW_JOB_SPEC``); the
job runs ``python -m visionflow.cluster.job_entry`` with this machine's Python unless told
otherwise. A token for a cluster with token auth: ``token_file``, else ``RAY_AUTH_TOKEN``, else
with ``RAY_AUTH_MODE=token`` where Ray looks (``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``); it
is sent as ``Authorization: Bearer`` on every request, the probe included.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from visionflow.cluster.head import (
    DEFAULT_DASHBOARD_PORT,
    LOOPBACK,
    ClusterError,
    bearer,
    find_token,
    get_json,
    last_lines,
    warn_if_clear_text,
)
from visionflow.cluster.job_entry import SPEC_ENV
from visionflow.errors import RunError, VisionFlowError, not_utf8
from visionflow.remote import is_uri
from visionflow.spec import ComponentSpec, PipelineSpec

DEFAULT_ADDRESS = f"http://{LOOPBACK}:{DEFAULT_DASHBOARD_PORT}"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
FAILED_LOG_LINES = 20


class JobNotFoundError(VisionFlowError):
    """No job with that id (or submission id) on the cluster."""


class JobFailedError(RunError):
    """A job ended FAILED or STOPPED (exit code 1); the message holds its last log lines."""


class HeadLostError(JobFailedError):
    """The head stopped answering while a job was followed: the job is taken as failed."""


# ------------------------------------------------------------------------------------ connecting


def resolve_address(address: str | None = None) -> str:
    """``address``, else ``RAY_ADDRESS``, else the default local head; must be http(s)://HOST:PORT."""
    address = (address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS).rstrip("/")
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ClusterError(
            f"address {address!r}: the Jobs API needs the dashboard's URL",
            hint=f"e.g. --address {DEFAULT_ADDRESS} (from --address or RAY_ADDRESS)",
        )
    return address


def auth_headers(token_file: str | None = None) -> dict[str, str]:
    """``Authorization: Bearer`` with the token of ``token_file``, else of ``RAY_AUTH_TOKEN``,
    else, with ``RAY_AUTH_MODE=token``, the one Ray's own clients would send; empty if none."""
    if token_file:
        return bearer(_read_token_file(token_file))
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return bearer(find_token())
    return bearer(os.environ.get("RAY_AUTH_TOKEN", "").strip())


def _read_token_file(token_file: str) -> str:
    try:
        token = Path(token_file).expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        problem = not_utf8(error) if isinstance(error, UnicodeDecodeError) else error.strerror
        raise ClusterError(
            f"--token-file {token_file}: {problem}",
            hint="give the file that holds the cluster's Ray auth token",
        ) from None
    if not token:
        raise ClusterError(
            f"--token-file {token_file}: the file is empty",
            hint="give the file that holds the cluster's Ray auth token",
        )
    return token


def connect(address: str | None = None, token_file: str | None = None):
    """A JobSubmissionClient for ``address``, after a probe that fails within seconds."""
    from ray.job_submission import JobSubmissionClient

    address = resolve_address(address)
    headers = auth_headers(token_file)
    warn_if_clear_text(address, headers)
    get_json(f"{address}/api/version", headers)
    return JobSubmissionClient(address, headers=headers or None)


# ------------------------------------------------------------------------------------- submitting


def submit_spec(
    client,
    spec: PipelineSpec,
    *,
    working_dir: str | Path | None = None,
    python: str | None = None,
    pip: Sequence[str] = (),
) -> str:
    """Submit a validated spec (``load_spec``) as a Ray Job; return the job's submission id.

    ``working_dir`` (a folder) is uploaded as the job's working directory: the job runs in its
    copy, and the spec's relative paths are relative to it, as if run there. ``pip``: requirements
    (``visionflow==0.3.0``, a wheel path on the cluster) that Ray installs into the job's own
    environment, whose ``python`` then runs it; without them the job runs ``python`` (default:
    this interpreter, for a cluster of machines laid out like this one)."""
    upload = check_working_dir(working_dir) if working_dir is not None else None
    spec = with_absolute_paths(spec, upload or Path.cwd(), upload)
    runtime_env: dict[str, Any] = {
        "env_vars": {SPEC_ENV: spec.to_yaml(), "NO_ALBUMENTATIONS_UPDATE": "1"}
    }
    if upload is not None:
        runtime_env["working_dir"] = str(upload)
    if pip:
        runtime_env["pip"] = list(pip)
    python = python or ("python" if pip else sys.executable)
    local = spec.resources.backend == "local"  # the driver itself trains: reserve its CPU
    return client.submit_job(
        entrypoint=f"{shlex.quote(python)} -m visionflow.cluster.job_entry",
        runtime_env=runtime_env,
        metadata={"visionflow_spec": spec.name},
        entrypoint_num_cpus=1 if local else 0,
    )


def check_working_dir(working_dir: str | Path) -> Path:
    """``working_dir`` made absolute; a ClusterError unless it is a folder."""
    path = Path(working_dir).expanduser().resolve()
    if not path.is_dir():
        raise ClusterError(
            f"--working-dir {working_dir}: not a folder",
            hint="give the folder to upload as the job's working directory",
        )
    return path


def with_absolute_paths(
    spec: PipelineSpec, base: Path, working_dir: Path | None = None
) -> PipelineSpec:
    """The spec's relative paths, read against ``base``, made fit for the job: ``output_dir``
    absolute (the job's working directory is not this one), and every ``data.args`` string that
    names an existing path absolute too (an fsspec URI ``output_dir`` stays as it is), or relative to ``working_dir`` when it lies inside that
    uploaded folder (the job runs in its copy)."""
    args = {key: _local_path(value, base, working_dir) for key, value in spec.data.args.items()}
    output_dir = (
        spec.output_dir
        if is_uri(spec.output_dir)
        else str((base / Path(spec.output_dir).expanduser()).resolve())
    )
    return spec.replace(output_dir=output_dir, data=ComponentSpec(spec.data.name, args))


def _local_path(value, base: Path, working_dir: Path | None):
    if not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    path = (base / value).resolve()
    if not path.exists():
        return value  # not a local path
    if working_dir is not None and path.is_relative_to(working_dir):
        return path.relative_to(working_dir).as_posix() or "."
    return str(path)


# ------------------------------------------------------------------------------------- following


def job_info(client, job_id: str):
    """The job's JobDetails; JobNotFoundError for an unknown id, HeadLostError when the head
    does not answer."""
    try:
        return client.get_job_info(job_id)
    except OSError as error:  # requests' ConnectionError and Timeout are OSErrors
        raise HeadLostError(
            f"job {job_id}: the Ray head at {client.get_address()} stopped answering "
            f"({type(error).__name__}): the job is reported failed, since its driver ran there",
            hint="once a head runs again, `visionflow run --resume RUN_DIR` continues the job's "
            "run from its last checkpoint",
        ) from None
    except RuntimeError as error:
        if "404" in str(error):
            raise JobNotFoundError(
                f"no job {job_id!r} on {client.get_address()}",
                hint="`visionflow jobs list` shows the jobs",
            ) from None
        raise ClusterError(f"job {job_id}: {error}") from None


def follow_logs(client, job_id: str, out=None) -> None:
    """Print the job's logs (to ``out``, default stdout) as they come, until it ends."""
    import logging

    import aiohttp

    job_info(client, job_id)
    out = out or sys.stdout
    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    try:
        asyncio.run(tail())
    except (RuntimeError, OSError, aiohttp.ClientError) as error:  # the status tells why
        out.write(f"(the job's log stream ended: {error})\n")


def wait_for_job(client, job_id: str, *, follow: bool = True, poll_s: float = 0.5) -> str:
    """Wait for the job to end (printing its logs if ``follow``); return ``SUCCEEDED`` or raise
    JobFailedError with the job's message and last log lines."""
    if follow:
        follow_logs(client, job_id)
    status = str(job_info(client, job_id).status)
    while status not in TERMINAL:  # the log stream can close a moment before the status flips
        time.sleep(poll_s)
        status = str(job_info(client, job_id).status)
    if status != "SUCCEEDED":
        raise job_failure(client, job_id)
    return status


def job_failure(client, job_id: str) -> JobFailedError:
    info = job_info(client, job_id)
    logs = last_lines(client.get_job_logs(job_id), FAILED_LOG_LINES)
    return JobFailedError(
        f"job {job_id} {info.status}: {info.message or ''}\n"
        f"--- last {FAILED_LOG_LINES} log lines ---\n{logs}",
        hint=f"`visionflow jobs logs {job_id}` shows the whole log",
    )


def stop_job(client, job_id: str) -> bool:
    """Ask the job to stop; False if it had already ended."""
    job_info(client, job_id)
    return client.stop_job(job_id)


def list_jobs(client) -> list:
    """Every job of the cluster, oldest first."""
    return sorted(client.list_jobs(), key=lambda job: job.start_time or 0)
