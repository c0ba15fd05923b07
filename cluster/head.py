"""A local Ray head for development: start it, show it, stop it (``visionflow cluster ...``).

    info = start_head(HeadConfig(num_cpus=2))    # ray start --head, loopback only
    print(info.dashboard_url)                    # http://127.0.0.1:8265: what `submit` talks to
    print(cluster_status(info.dashboard_url))    # nodes and resources
    stop_head()                                  # only this head's processes

- **loopback only** by default: node IP, GCS, raylet, dashboard and agents listen on 127.0.0.1.
  ``host`` binds the node and the dashboard to another address (a head other machines join).
- **token auth**: Ray 2.60 turns token auth on when it finds a token. A loopback-only head is
  started with ``RAY_AUTH_MODE=disabled`` unless ``RAY_AUTH_MODE`` says otherwise (anyone *on
  this machine* can then submit jobs that run as you). A head on another ``host`` always uses a
  token (``ray get-auth-token --generate`` makes one) and refuses to start without one, whatever
  ``RAY_AUTH_MODE`` says, unless ``insecure_no_auth`` is set.
- **its own temp dir** (``/tmp/vf-head-<uid>`` by default), which also names the head: ``status``
  and ``stop`` find it there. ``ray start`` runs in a new session; the head's state file records
  the session and the id and start time of each process in it, and ``stop`` ends exactly those,
  the rest of their session and their descendants (``ray stop`` would end every Ray process of
  the user on the machine, other people's included).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from visionflow.errors import VisionFlowError

DEFAULT_TEMP_DIR = f"/tmp/vf-head-{os.getuid()}"
DEFAULT_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
LOOPBACK = "127.0.0.1"
STATE_FILE = "visionflow_head.json"
#: What the dashboard answers before the autoscaler's first report.
NO_STATUS_YET = "No cluster status"
#: Ray's unix sockets live under the temp dir; their paths must stay under 107 characters.
MAX_TEMP_DIR_CHARS = 40
HTTP_TIMEOUT_S = 5.0
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0


class ClusterError(VisionFlowError):
    """A head cannot be started, reached or found (bad address, port in use, no token, ...)."""


@dataclass(frozen=True)
class HeadConfig:
    num_cpus: int | None = None
    num_gpus: int | None = None
    port: int = DEFAULT_PORT
    dashboard_port: int = DEFAULT_DASHBOARD_PORT
    host: str = LOOPBACK
    temp_dir: str = DEFAULT_TEMP_DIR
    #: Start a head on a non-loopback ``host`` without token auth: anyone who reaches it runs code.
    insecure_no_auth: bool = False


@dataclass(frozen=True)
class HeadInfo:
    """A running head, as written to ``<temp_dir>/visionflow_head.json``."""

    gcs_address: str
    dashboard_url: str
    temp_dir: str
    auth_mode: str
    #: The session ``ray start`` ran in (its process id) and ``[pid, start time]`` of each process
    #: in it once the head was up: what ``stop_head`` may signal.
    session_id: int = 0
    processes: tuple = ()


# ------------------------------------------------------------------------------------------ start


def start_head(config: HeadConfig = HeadConfig()) -> HeadInfo:
    """``ray start --head`` with ``config``; returns once the Jobs API answers."""
    temp_dir = Path(config.temp_dir).resolve()
    _check_can_start(config, temp_dir)
    env = head_environment(config.host, config.insecure_no_auth)
    command = _ray_start_command(config, temp_dir)
    temp_dir.mkdir(parents=True, exist_ok=True)
    # a new session: every daemon of this head, and nothing else, starts in it
    starter = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = starter.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _end(_session(starter.pid))
        raise ClusterError(f"ray start did not finish in {START_TIMEOUT_S:.0f} s") from None
    members = _session(starter.pid)
    if starter.returncode != 0:
        _end(members)
        raise ClusterError("ray start failed:\n" + last_lines(output, 15))
    info = HeadInfo(
        f"{config.host}:{config.port}",
        f"http://{config.host}:{config.dashboard_port}",
        str(temp_dir),
        env["RAY_AUTH_MODE"],
        starter.pid,
        tuple((p.pid, p.create_time()) for p in members),
    )
    (temp_dir / STATE_FILE).write_text(json.dumps(asdict(info), indent=2))
    token = find_token(env) if info.auth_mode == "token" else None
    try:
        _wait_for_dashboard(info.dashboard_url, bearer(token))
    except ClusterError:
        stop_head(temp_dir)
        raise
    return info


def head_environment(host: str, insecure_no_auth: bool = False) -> dict[str, str]:
    """The environment of the head's processes (jobs and their workers inherit it).

    A head beyond loopback gets ``RAY_AUTH_MODE=token`` even when the environment says
    otherwise; only ``insecure_no_auth`` starts it without auth."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    if host == LOOPBACK:
        env.setdefault("RAY_AUTH_MODE", "disabled")
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # drivers and workers use 127.0.0.1 too
    elif insecure_no_auth:
        env["RAY_AUTH_MODE"] = "disabled"
    else:
        env["RAY_AUTH_MODE"] = "token"
    if env["RAY_AUTH_MODE"] == "token" and find_token(env) is None:
        raise ClusterError(
            f"a head on {host} needs a Ray auth token and none was found",
            hint="run `ray get-auth-token --generate` (writes ~/.ray/auth_token), "
            "or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH",
        )
    return env


def find_token(env: Mapping[str, str] = os.environ) -> str | None:
    """The Ray auth token where Ray looks for it: ``RAY_AUTH_TOKEN``, else the file named by
    ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``; None if there is none."""
    token = env.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        return path.expanduser().read_text().strip() or None
    except OSError:
        return None


def bearer(token: str | None) -> dict[str, str]:
    """The HTTP header that carries a Ray auth token; empty without one."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check_can_start(config: HeadConfig, temp_dir: Path) -> None:
    if len(str(temp_dir)) > MAX_TEMP_DIR_CHARS:
        raise ClusterError(
            f"--temp-dir {temp_dir}: longer than {MAX_TEMP_DIR_CHARS} characters",
            hint="Ray's socket paths under it must stay short; use e.g. /tmp/vf-x",
        )
    info = read_head(temp_dir)
    if info is not None and head_processes(info):
        raise ClusterError(
            f"a head is already running in {temp_dir}",
            hint="`visionflow cluster stop` first, or give another --temp-dir",
        )
    for name, port in (("--port", config.port), ("--dashboard-port", config.dashboard_port)):
        if not port_is_free(config.host, port):
            raise ClusterError(
                f"{name} {port}: already in use on {config.host}", hint=f"pick another {name}"
            )


def _ray_start_command(config: HeadConfig, temp_dir: Path) -> list[str]:
    # Ray's CLI through this interpreter: no `ray` script needs to sit beside it
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        f"--node-ip-address={config.host}",
        f"--port={config.port}",
        "--include-dashboard=true",
        f"--dashboard-host={config.host}",
        f"--dashboard-port={config.dashboard_port}",
        f"--temp-dir={temp_dir}",
        # Ray's fixed defaults (10001, 52365) would clash with another head on the machine
        f"--ray-client-server-port={free_port(config.host)}",
        f"--dashboard-agent-listen-port={free_port(config.host)}",
        "--disable-usage-stats",
    ]
    if config.num_cpus is not None:
        command.append(f"--num-cpus={config.num_cpus}")
    if config.num_gpus is not None:
        command.append(f"--num-gpus={config.num_gpus}")
    return command


def _wait_for_dashboard(url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            get_json(f"{url}/api/jobs/", headers, timeout=HTTP_TIMEOUT_S)
            return
        except ClusterError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


# ----------------------------------------------------------------------------------------- status


def read_head(temp_dir: str | Path = DEFAULT_TEMP_DIR) -> HeadInfo | None:
    """The head that ``start_head`` wrote to ``temp_dir``, or None."""
    try:
        return HeadInfo(**json.loads((Path(temp_dir) / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def cluster_status(
    dashboard_url: str, headers: dict[str, str] | None = None, wait_s: float = 20.0
) -> str:
    """Ray's formatted cluster status (nodes, resources, demands) from the dashboard. A head
    that just started has none for a few seconds: wait up to ``wait_s`` for it."""
    deadline = time.monotonic() + wait_s
    while True:
        reply = get_json(f"{dashboard_url}/api/cluster_status?format=1", headers)
        text = (reply.get("data") or {}).get("clusterStatus") or NO_STATUS_YET
        if not text.startswith(NO_STATUS_YET) or time.monotonic() > deadline:
            return text
        time.sleep(1.0)


def get_json(
    url: str, headers: dict[str, str] | None = None, timeout: float = HTTP_TIMEOUT_S
) -> dict:
    """GET ``url`` as JSON; every failure is a ClusterError within ``timeout`` seconds. An
    ``https`` URL is verified against ``$REQUESTS_CA_BUNDLE`` when set (the CA file Ray's client
    reads), else the system CAs."""
    import ssl  # here, not at the top: every CLI command's parser imports this module
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers or {})
    context = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE") or None)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise ClusterError(
                f"{url}: the cluster refused the request ({error.code}): it needs "
                "a valid Ray auth token",
                hint="pass --token-file PATH or set RAY_AUTH_TOKEN; see docs/cluster.md",
            ) from None
        raise ClusterError(
            f"{url}: HTTP {error.code} {error.reason}",
            hint="is the address a Ray dashboard (http://HOST:8265)?",
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ClusterError(
            f"cannot reach a Ray dashboard at {url} ({reason})",
            hint="is the head running (`visionflow cluster start`) and the "
            "address its dashboard (http://HOST:8265)?",
        ) from None


def warn_if_clear_text(address: str, headers: Mapping[str, str]) -> None:
    """One warning line on stderr when ``headers`` carry a token over plain http beyond loopback."""
    parsed = urlparse(address)
    if (
        headers
        and parsed.scheme == "http"
        and parsed.hostname not in (LOOPBACK, "localhost", "::1")
    ):
        print(
            f"visionflow: warning: {address}: the Ray auth token travels in clear text over "
            "http; use an https address (docs/cluster.md)",
            file=sys.stderr,
        )


# ------------------------------------------------------------------------------------------- stop


def stop_head(temp_dir: str | Path = DEFAULT_TEMP_DIR) -> int:
    """End every process of the head in ``temp_dir`` (SIGTERM, SIGKILL after a grace period).

    Returns how many were running. Only the processes this head started (``head_processes``)
    are signalled: never a process found by its name or command line."""
    temp_dir = Path(temp_dir).resolve()
    info = read_head(temp_dir)
    processes = head_processes(info) if info is not None else []
    _end(processes)
    (temp_dir / STATE_FILE).unlink(missing_ok=True)
    return len(processes)


def head_processes(info: HeadInfo) -> list:
    """The running processes of the head ``info``: those recorded at its start that still run
    (same id *and* start time), the rest of their session, and all their descendants (workers,
    agents, job drivers); only this user's. Empty once none of the recorded ones runs."""
    import psutil

    recorded = [process for process in map(_same_process, info.processes) if process]
    if not recorded:  # the session id may since name someone else's session
        return []
    found = {process.pid: process for process in recorded + _session(info.session_id)}
    for process in list(found.values()):
        try:
            found.update({child.pid: child for child in process.children(recursive=True)})
        except psutil.Error:
            pass
    return [process for process in found.values() if _owned(process)]


def _same_process(record):
    """The process ``record`` (``[pid, start time]``) names, if that very process still runs."""
    import psutil

    pid, created = record
    try:
        process = psutil.Process(pid)
        return process if process.create_time() == created else None
    except psutil.Error:
        return None


def _session(session_id: int) -> list:
    """This user's processes in the session ``session_id``."""
    import psutil

    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id and _owned(process):
                members.append(process)
        except OSError:
            pass
    return members


def _owned(process) -> bool:
    import psutil

    try:
        return process.uids().real == os.getuid()
    except psutil.Error:
        return False


def _end(processes: list) -> None:
    """SIGTERM ``processes``, then SIGKILL those still alive after the grace period."""
    import psutil

    for process in processes:
        _signal(process, "terminate")
    _, alive = psutil.wait_procs(processes, timeout=STOP_GRACE_S)
    for process in alive:
        _signal(process, "kill")
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)


def _signal(process, action: str) -> None:
    import psutil

    try:
        getattr(process, action)()
    except psutil.Error:
        pass


def last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])
