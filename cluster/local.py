"""Embedded local Ray: a private, loopback-only Ray instance for the length of a ``with`` block.

    with embedded_ray(num_cpus=2) as info:
        ...                               # TorchTrainer, tasks, actors
    # Ray is shut down here and its temp dir removed (VISIONFLOW_KEEP_RAY_LOGS=1 keeps it)

What it sets up, and why:

- **loopback only**: Ray binds its servers (GCS, raylet, workers, agents) to the node IP, which it
  resolves to the machine's outward address even when told ``_node_ip_address="127.0.0.1"``. With
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the switch Ray uses on laptops) the node IP is the
  loopback and every server listens on 127.0.0.1 only. The dashboard is off.
- **no token auth** (``RAY_AUTH_MODE=disabled``): Ray 2.5x+ turns token auth on for new local
  clusters and writes ``~/.ray/auth_token``; a loopback-only cluster of one process does not need
  it. Both are set only while this process starts its own Ray, and an explicit ``RAY_AUTH_MODE``
  from the user (e.g. ``token``) is respected. Connecting to a real cluster is ``docs/ray.md``.
- **its own temp dir**, short (``/tmp/vf-ray-XXXX``: Ray's unix sockets live there and their
  paths must stay under 107 characters), so concurrent runs and users never share a session.
- **quiet**: Ray's own INFO logs are off; worker stdout/stderr reach the terminal (Lightning's
  progress bar and warnings from the training workers) unless ``log_to_driver=False``.
- **no usage stats** are sent anywhere.

If the caller already called ``ray.init`` (a real cluster, or their own local one), it is reused
as is and left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Ray Train V2 (the V1 trainer asks for an extra CPU and deadlocks on a 2-core machine). Read when
# ray.train is imported, so it is set before anything here imports Ray.
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# Lines of Ray's own chatter that the driver does not print (read when ray is imported). Without
# the dashboard, Ray Train's placement-group cleaner cannot reach the state API and says so every
# second; the PreemptionWatcher line is a harmless internal notice logged at ERROR level.
# "Reporting training result" is an INFO line of a Ray Train logger that escapes its log level.
QUIET_LINES = (
    r"Failed to query Ray Train Controller actor state"
    r"|has constructor arguments in the object store and max_restarts"
    r"|Reporting training result \d+: TrainingReport"
)
os.environ.setdefault("RAY_DEDUP_LOGS_SKIP_REGEX", QUIET_LINES)

logger = logging.getLogger(__name__)

#: Set to 1 to keep the embedded Ray's temp dir (its session logs) after it shuts down.
KEEP_LOGS_ENV = "VISIONFLOW_KEEP_RAY_LOGS"

#: Environment of a private local Ray while it starts (raylet, GCS and workers inherit it).
LOCAL_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node IP = 127.0.0.1: every server binds loopback
    "RAY_AUTH_MODE": "disabled",  # loopback-only, one user: no token
    "RAY_USAGE_STATS_ENABLED": "0",  # no phoning home
    # No idle workers started ahead: Ray Train's actors run with their own runtime env and never
    # use them, and on 2 cores their start-up slows the fit's own by ~10 s.
    "RAY_enable_worker_prestart": "0",
}

#: Ray Train settings while the embedded Ray runs (read by the driver when a fit starts, passed on
#: to the controller and workers): one local node is never preempted, and without a dashboard
#: nobody reads Ray Train's Prometheus metrics, so neither helper actor is started.
EMBEDDED_TRAIN_ENV = {
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
}


_current: RayInfo | None = None


@dataclass(frozen=True)
class RayInfo:
    """What :func:`embedded_ray` started (or found): ``started`` is False for a reused Ray."""

    started: bool
    address: str | None
    temp_dir: Path | None
    num_cpus: float
    num_gpus: float
    init_seconds: float


@contextlib.contextmanager
def embedded_ray(
    num_cpus: int | None = None, num_gpus: int | None = None, *, log_to_driver: bool = True
) -> Iterator[RayInfo]:
    """Start a private local Ray (or reuse the one already initialized) for the block.

    ``num_cpus`` / ``num_gpus`` default to what the machine has. Ray is shut down on exit only if
    this call started it."""
    global _current
    import ray

    if ray.is_initialized():
        resources = ray.cluster_resources()
        yield RayInfo(
            False, _address(), None, resources.get("CPU", 0.0), resources.get("GPU", 0.0), 0.0
        )
        return

    _quiet_driver_logs()
    temp_dir = Path(tempfile.mkdtemp(prefix="vf-ray-", dir=_short_temp_root()))
    start = time.perf_counter()
    try:
        with _local_ray_environment():
            ray.init(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                _temp_dir=str(temp_dir),
                namespace="visionflow",
                log_to_driver=log_to_driver,
                logging_level=logging.WARNING,
            )
    except BaseException:
        _shutdown(temp_dir, keep=_keep_logs())
        raise
    resources = ray.cluster_resources()
    info = RayInfo(
        True,
        _address(),
        temp_dir,
        resources.get("CPU", 0.0),
        resources.get("GPU", 0.0),
        time.perf_counter() - start,
    )
    _current = info
    logger.info(
        "embedded Ray up in %.1f s (%g CPU, %g GPU), temp dir %s",
        info.init_seconds,
        info.num_cpus,
        info.num_gpus,
        temp_dir,
    )
    try:
        with scoped_env(EMBEDDED_TRAIN_ENV):
            yield info
    finally:
        _current = None
        _shutdown(temp_dir, keep=_keep_logs())


@contextlib.contextmanager
def connected_ray(address: str, *, probe_timeout_s: float = 5.0) -> Iterator[RayInfo]:
    """Join the running Ray cluster at ``address`` for the block; it keeps running afterwards.

    ``HOST:PORT`` is a head's GCS address (``visionflow cluster start`` prints it): this process
    becomes a driver of that cluster, so the cluster must reach it back (a cluster node, or this
    machine's own head; a loopback head is joined on the loopback). ``ray://HOST:PORT`` goes
    through Ray Client. The address is probed first: an unreachable one is a ClusterError within
    ``probe_timeout_s``, where ``ray.init`` would wait for minutes."""
    import ray

    from visionflow.cluster.head import ClusterError

    if ray.is_initialized():
        raise ClusterError(
            "--address: Ray is already initialized in this process",
            hint="call ray.shutdown() first, or let cluster.run use that Ray",
        )
    host, port = _host_and_port(address)
    _probe(host, port, probe_timeout_s, address)
    _quiet_driver_logs()
    joining = (
        _local_ray_environment() if host in ("127.0.0.1", "localhost") else contextlib.nullcontext()
    )
    with joining:
        ray.init(address=address, namespace="visionflow", logging_level=logging.WARNING)
    try:
        resources = ray.cluster_resources()
        yield RayInfo(
            False, address, None, resources.get("CPU", 0.0), resources.get("GPU", 0.0), 0.0
        )
    finally:
        ray.shutdown()  # this driver leaves; the cluster stays up


def _host_and_port(address: str) -> tuple[str, int]:
    from visionflow.cluster.head import ClusterError

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"--address {address}: expected HOST:PORT (the head's GCS address, "
            "e.g. 127.0.0.1:6379) or ray://HOST:PORT (Ray Client)"
        )
    return host, int(port)


def _probe(host: str, port: int, timeout_s: float, address: str) -> None:
    import socket

    from visionflow.cluster.head import ClusterError

    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ClusterError(
            f"--address {address}: cannot reach a Ray head there ({error.strerror or error})",
            hint="start one with `visionflow cluster start` (it prints the GCS "
            "address), or check the host and port",
        ) from None


def current() -> RayInfo | None:
    """The embedded Ray this process started and is running, or None (no Ray, or someone else's)."""
    import sys

    ray = sys.modules.get("ray")
    return _current if _current is not None and ray is not None and ray.is_initialized() else None


def _keep_logs() -> bool:
    return os.environ.get(KEEP_LOGS_ENV, "").lower() in ("1", "true", "yes")


def _shutdown(temp_dir: Path, keep: bool) -> None:
    import ray

    try:
        ray.shutdown()
    finally:
        if keep:
            logger.warning("Ray's session logs are kept in %s (%s=1)", temp_dir, KEEP_LOGS_ENV)
        else:
            shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def scoped_env(defaults: dict[str, str]) -> Iterator[None]:
    """Set each variable of ``defaults`` that the user has not set, for the block only."""
    saved = {key: os.environ.get(key) for key in defaults}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _local_ray_environment() -> Iterator[None]:
    """:data:`LOCAL_RAY_ENV` while a local Ray starts (its processes inherit it), then restored."""
    from ray._private import ray_constants

    with scoped_env(LOCAL_RAY_ENV):
        # Read once when ray is imported: if the caller imported ray before us, set it here too.
        saved_cluster = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] not in (
            "0",
            "false",
            "False",
        )
        try:
            yield
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = saved_cluster


def _quiet_driver_logs() -> None:
    """Apply :data:`QUIET_LINES` even if ray was imported before this module set the variable
    (Ray reads it at import). Best effort: the deduplicators are Ray internals."""
    import re

    try:
        from ray._private import ray_logging
    except ImportError:  # pragma: no cover
        return
    pattern = re.compile(os.environ.get("RAY_DEDUP_LOGS_SKIP_REGEX") or QUIET_LINES)
    for name in ("stdout_deduplicator", "stderr_deduplicator"):
        deduplicator = getattr(ray_logging, name, None)
        if deduplicator is not None and getattr(deduplicator, "skip_re", "absent") is None:
            deduplicator.skip_re = pattern


def _short_temp_root() -> str:
    """``/tmp`` where it exists: Ray's socket paths under the temp dir must stay short."""
    return "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else tempfile.gettempdir()


def _address() -> str | None:
    import ray

    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # pragma: no cover - older/newer Ray without gcs_address
        return None
