"""Run directories: where a pipeline leaves everything it made, written so nothing is half-written.

    runs/<name>/<timestamp>/
        spec.resolved.yaml    the exact spec, defaults filled in; re-running it reproduces the run
        environment.json      versions, git SHA, devices, seed, command line
        status.json           state (running/completed/failed) and the metrics of finished stages
        metrics.csv           Lightning's CSVLogger; tensorboard/ holds the TensorBoard events
        checkpoints/          last.ckpt and the best checkpoint
        plots/                loss and metric curves, task plots (confusion matrix, PR curves, ...)
        summary.json          final metrics of every stage

Every file VisionFlow writes goes through :func:`atomic_write_bytes` (temp file in the same folder,
fsync, ``os.replace``), so an interrupted run never leaves a truncated file behind.

``output_dir`` may be an fsspec URI (``s3://bucket/runs``): the run then works in a local staging
copy mirrored to the URI whenever its status changes (:mod:`visionflow.remote`).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from visionflow.errors import CheckpointError, RunError, SpecError
from visionflow.remote import RemoteMirror, is_uri, staging_dir

SPEC_FILE = "spec.resolved.yaml"
STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"
ENVIRONMENT_FILE = "environment.json"
TRACKED_PACKAGES = (
    "visionflow",
    "torch",
    "torchvision",
    "lightning",
    "torchmetrics",
    "numpy",
    "albumentations",
    "pycocotools",
    "ray",
    "open3d",
)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file and a rename; readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename in (None, temp):
            error.filename = str(path)  # a failed write() names no file: name the one written
        raise
    return path


def atomic_write_arrays(path: Path, arrays: Any) -> Path:
    """Write one array as ``.npy`` (``np.save``) or a mapping of named arrays as ``.npz``
    (``np.savez``) to ``path`` as :func:`atomic_write_bytes` does: through a temp file of its own,
    so processes writing the same file at once (loader workers, a sweep's trials) never mix."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    if isinstance(arrays, dict):
        np.savez(buffer, **arrays)
    else:
        np.save(buffer, arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno})"
        ) from None


@dataclass(frozen=True)
class RunDirectory:
    """A run's folder. Create one with :meth:`create`, reopen one with :meth:`open`.
    ``remote``: the URI this (staged) folder is mirrored to, when ``output_dir`` was one."""

    path: Path
    remote: str | None = None

    @classmethod
    def create(cls, output_dir: str | Path, name: str, spec_yaml: str) -> RunDirectory:
        """Make ``output_dir/name/<UTC timestamp>/`` (unique) and write the resolved spec into it."""
        if is_uri(output_dir):
            run = cls(*_new_staged_run(f"{str(output_dir).rstrip('/')}/{name}"))
        else:
            try:
                run = cls(_new_local_run(Path(output_dir).expanduser().resolve() / name))
            except OSError as error:
                raise SpecError(
                    f"output_dir: {output_dir}: cannot make the run directory there "
                    f"({error.strerror or error})",
                    hint="choose a writable output_dir",
                ) from None
        atomic_write_text(run.spec_path, spec_yaml)
        run.write_status("created")
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        """Reopen an existing run directory (for ``--resume``), pulling a remote one into
        staging first; it must hold a resolved spec."""
        remote = str(path).rstrip("/") if is_uri(path) else None
        if remote is not None:
            path = staging_dir(remote)
            RemoteMirror(path, remote).pull()
        path = Path(path).resolve()
        if not (path / SPEC_FILE).is_file():
            raise CheckpointError(
                f"{remote or path}: not a VisionFlow run directory (no {SPEC_FILE})",
                hint="pass the folder printed by `visionflow run`, e.g. runs/<name>/<timestamp>",
            )
        return cls(path, remote)

    @property
    def location(self) -> str:
        """Where the run lives for the user: the remote URI, else the local folder."""
        return self.remote or str(self.path)

    @cached_property
    def mirror(self) -> RemoteMirror | None:
        return RemoteMirror(self.path, self.remote) if self.remote else None

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def last_checkpoint(self) -> Path | None:
        path = self.checkpoints / "last.ckpt"
        return path if path.is_file() else None

    def deleted(self) -> RunError | None:
        """The error of a run whose folder was deleted under it (its resolved spec is gone);
        None while it is there. Nothing may be written then: a write would make the folder
        again, and half a run directory would pass for a run."""
        if self.spec_path.is_file():
            return None
        return RunError(
            f"{self.location}: the run directory was deleted while the run was writing to it",
            hint="nothing more was written there; start the run again with `visionflow run SPEC`",
        )

    def status(self) -> dict[str, Any]:
        path = self.path / STATUS_FILE
        return read_json(path) if path.is_file() else {"state": "created", "stages": {}}

    def write_status(self, state: str, stages: dict[str, Any] | None = None) -> None:
        """Record the run's state (and finished stages); a remote run is mirrored right after."""
        previous = self.status() if (self.path / STATUS_FILE).is_file() else {"stages": {}}
        atomic_write_json(
            self.path / STATUS_FILE,
            {
                "state": state,
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "stages": previous["stages"] if stages is None else stages,
            },
        )
        if self.mirror is not None:
            self.mirror.push()

    def write_summary(self, summary: dict[str, Any]) -> Path:
        return atomic_write_json(self.path / SUMMARY_FILE, summary)

    def write_environment(self, seed: int, extra: dict[str, Any] | None = None) -> Path:
        return atomic_write_json(
            self.path / ENVIRONMENT_FILE, {**collect_environment(seed), **(extra or {})}
        )

    def remove_partial_writes(self) -> list[Path]:
        """Delete the temp files a killed writer left (``.NAME.*.tmp``, of an atomic write or a
        checkpoint); the file each was replacing is still whole under its own name."""
        partial = [path for path in self.path.rglob(".*.tmp") if path.is_file()]
        for path in partial:
            path.unlink(missing_ok=True)
        return partial

    def write_yaml(self, name: str, data: Any) -> Path:
        return atomic_write_text(self.path / name, yaml.safe_dump(data, sort_keys=False))


#: The errors of a write that the disk refused: full, over quota, read-only, not permitted.
REFUSED_WRITES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def refused_write(error: OSError, run_dir: Path) -> RunError | None:
    """One line for a write into ``run_dir`` that the disk refused (None for other errors): the
    files written before it are whole, since every write goes through a temp file and a rename."""
    if error.errno not in REFUSED_WRITES:
        return None
    return RunError(
        f"{error.filename or run_dir}: cannot write ({error.strerror or error}): the "
        f"run stopped; the checkpoints before it are intact",
        hint=f"free space (or make it writable), then `visionflow run --resume {run_dir}`",
    )


def _run_names() -> Iterator[str]:
    """``<UTC timestamp>``, then ``<timestamp>-1``, ``-2``, ... (a thousand runs in one second)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    yield stamp
    yield from (f"{stamp}-{suffix}" for suffix in range(1, 1000))


def _new_local_run(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for name in _run_names():
        try:
            (parent / name).mkdir()
            return parent / name
        except FileExistsError:
            continue
    raise CheckpointError(f"{parent}: cannot make a unique run directory")  # pragma: no cover


def _new_staged_run(parent: str) -> tuple[Path, str]:
    """(a new local staging folder, the URI it mirrors) under the URI ``parent``."""
    for name in _run_names():
        remote = f"{parent}/{name}"
        local = staging_dir(remote)
        mirror = RemoteMirror(local, remote)
        if mirror.fs.exists(mirror.root) or local.exists():
            continue
        local.mkdir(parents=True)
        return local, remote
    raise CheckpointError(f"{parent}: cannot make a unique run directory")  # pragma: no cover


def collect_environment(seed: int) -> dict[str, Any]:
    """Versions, git SHA, devices, seed and command line of this process."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "seed": seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "packages": _package_versions(),
        "git_sha": _git_sha(),
        "devices": _devices(),
    }


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _devices() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "cpu_count": os.cpu_count(),
        "cuda_available": cuda,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
    }
