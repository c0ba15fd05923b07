"""Run directories on remote storage: ``output_dir: s3://bucket/runs`` (any fsspec URI).

Lightning, Ray Train and our atomic writes need a real folder, so a run whose ``output_dir`` is a
URI works in a local *staging* copy (``$VISIONFLOW_STAGING_DIR``, default
``~/.cache/visionflow/staging``) and mirrors it to ``<output_dir>/<name>/<timestamp>/`` each time
its status changes: at the start, after every stage, when it is interrupted and when it ends.
Each push uploads only files changed since the last one, each through a temporary name and a
move, so the remote copy never holds a half-written file. ``--resume URI`` pulls the run back
into staging first. The protocols are fsspec's (``s3://`` needs ``s3fs``, ``gs://`` ``gcsfs``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from visionflow.errors import RunError, SpecError

STAGING_ENV = "VISIONFLOW_STAGING_DIR"


def is_uri(path: str | Path) -> bool:
    """``s3://...``, ``gs://...``, ``memory://...``, ``file://...``: a path fsspec resolves."""
    return "://" in str(path)


def staging_dir(uri: str) -> Path:
    """The local folder that stages the run directory ``uri``: the same one for the same URI."""
    root = Path(os.environ.get(STAGING_ENV) or Path.home() / ".cache" / "visionflow" / "staging")
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    name = "-".join(uri.rstrip("/").rsplit("/", 2)[-2:])  # <run name>-<timestamp>
    return root.expanduser().resolve() / f"{name}-{digest}"


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for ``uri``; SpecError when fsspec cannot serve it."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as error:
        raise SpecError(f"output_dir: {uri}: {error}",
                        hint="install the fsspec backend of this protocol (s3fs for s3://, "
                             "gcsfs for gs://) or use a local or shared path") from None
    return fs, path


class RemoteMirror:
    """Mirrors the files of ``local`` to ``uri``, uploading only what changed since last time."""

    def __init__(self, local: Path, uri: str):
        self.local, self.uri = local, uri.rstrip("/")
        self.fs, self.root = filesystem(self.uri)
        self._pushed: dict[str, tuple[int, int]] = {}

    def push(self) -> None:
        """Upload every new or changed file (by size and mtime), each through a temporary name."""
        for path in sorted(p for p in self.local.rglob("*") if p.is_file() and not _temporary(p)):
            relative = path.relative_to(self.local).as_posix()
            try:
                stat = path.stat()
            except FileNotFoundError:  # replaced between listing and now: the next push has it
                continue
            if self._pushed.get(relative) == (stat.st_size, stat.st_mtime_ns):
                continue
            target = f"{self.root}/{relative}"
            temporary = f"{target}.uploading-{os.getpid()}"
            try:
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), temporary)
                self.fs.mv(temporary, target)
            except OSError as error:
                raise RunError(f"{self.uri}/{relative}: upload failed ({error})",
                               hint=f"the run's local copy is complete in {self.local}") from None
            self._pushed[relative] = (stat.st_size, stat.st_mtime_ns)

    def pull(self) -> None:
        """Download the remote run directory into ``local`` (for ``--resume``)."""
        if not self.fs.isdir(self.root):
            raise SpecError(f"{self.uri}: no such run directory")
        self.local.mkdir(parents=True, exist_ok=True)
        for remote, info in self.fs.find(self.root, detail=True).items():  # one listing, sizes too
            relative = remote[len(self.root):].lstrip("/")
            if ".uploading-" in relative:
                continue
            destination = self.local / relative
            if destination.is_file() and destination.stat().st_size == info["size"]:
                continue  # staged already (the run was opened before, or ran here)
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(remote, str(destination))
            stat = destination.stat()
            self._pushed[relative] = (stat.st_size, stat.st_mtime_ns)


def _temporary(path: Path) -> bool:
    """Files still being written by an atomic write (``.name.XXXX.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")
