"""Run directories on remote storage: ``output_dir: s3://bucket/runs`` (any fsspec URI).

Lightning, Ray Train and our atomic writes need a real folder, so a run whose ``output_dir`` is a
URI works in a local *staging* copy (``$VISIONFLOW_STAGING_DIR``, default
``~/.cache/visionflow/staging``) and mirrors it to ``<output_dir>/<name>/<timestamp>/`` each time
its status changes: at the start, after every stage, when it is interrupted and when it ends.
Each push uploads only files changed since the last one, each through a temporary name and a
move, so the remote copy never holds a half-written file. ``--resume URI`` pulls the run back
into staging first: a file is downloaded unless the staged copy is the one last synced *and* the
store still reports the same version of it (size plus its etag, checksum or modification time,
recorded in ``<staging>/.<run>.versions.json``); a listed name that would land outside the
staging folder (``../``) is refused. The protocols are fsspec's (``s3://`` needs ``s3fs``,
``gs://`` ``gcsfs``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from visionflow.errors import RunError, SpecError

STAGING_ENV = "VISIONFLOW_STAGING_DIR"
#: The fields of an fsspec listing that change when a file's content does (s3, gcs, azure, local,
#: memory): a file whose recorded fields all match is the version synced last.
VERSION_FIELDS = (
    "size",
    "ETag",
    "etag",
    "md5Hash",
    "crc32c",
    "generation",
    "content_md5",
    "mtime",
    "LastModified",
    "last_modified",
    "updated",
    "created",
)


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
        raise SpecError(
            f"output_dir: {uri}: {error}",
            hint="install the fsspec backend of this protocol (s3fs for s3://, "
            "gcsfs for gs://) or use a local or shared path",
        ) from None
    return fs, path


class RemoteMirror:
    """Mirrors the files of ``local`` to ``uri``, uploading only what changed since last time."""

    def __init__(self, local: Path, uri: str):
        self.local, self.uri = local, uri.rstrip("/")
        self.fs, self.root = filesystem(self.uri)
        self._versions_file = local.parent / f".{local.name}.versions.json"
        self._synced = (
            self._read_versions()
        )  # relative path -> {"local": [size, mtime], "remote": ...}

    def push(self) -> None:
        """Upload every new or changed file (by size and mtime), each through a temporary name."""
        for path in sorted(p for p in self.local.rglob("*") if p.is_file() and not _temporary(p)):
            relative = path.relative_to(self.local).as_posix()
            try:
                stat = _local_stat(path)
            except FileNotFoundError:  # replaced between listing and now: the next push has it
                continue
            if self._synced.get(relative, {}).get("local") == stat:
                continue
            target = f"{self.root}/{relative}"
            temporary = f"{target}.uploading-{os.getpid()}"
            try:
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), temporary)
                self.fs.mv(temporary, target)
                remote_version = _version(self.fs.info(target))
            except OSError as error:
                raise RunError(
                    f"{self.uri}/{relative}: upload failed ({error})",
                    hint=f"the run's local copy is complete in {self.local}",
                ) from None
            self._synced[relative] = {"local": stat, "remote": remote_version}
        self._write_versions()

    def pull(self) -> None:
        """Download the remote run directory into ``local`` (for ``--resume``)."""
        if not self.fs.isdir(self.root):
            raise SpecError(f"{self.uri}: no such run directory")
        self.local.mkdir(parents=True, exist_ok=True)
        for remote, info in self.fs.find(self.root, detail=True).items():  # one listing, sizes too
            relative = self._inside(remote)
            if ".uploading-" in relative:
                continue
            destination, version = self.local / relative, _version(info)
            synced = self._synced.get(relative, {})
            if (
                destination.is_file()
                and synced.get("local") == _local_stat(destination)
                and synced.get("remote") == version
            ):
                continue  # staged already, and the store still holds that version
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(remote, str(destination))
            self._synced[relative] = {"local": _local_stat(destination), "remote": version}
        self._write_versions()

    def _inside(self, remote: str) -> str:
        """``remote``'s path relative to the run; RunError for a name that would leave it."""
        relative = PurePosixPath(remote[len(self.root) :].lstrip("/"))
        if (
            not remote.startswith(f"{self.root}/")
            or relative.is_absolute()
            or ".." in relative.parts
            or not relative.parts
        ):
            raise RunError(
                f"{self.uri}: the listing names {remote!r}, which is outside the run "
                "directory; nothing was written there",
                hint="the store returned a hostile or broken listing; check who can write to it",
            )
        return relative.as_posix()

    def _read_versions(self) -> dict:
        try:
            return json.loads(self._versions_file.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: every file then counts as changed

    def _write_versions(self) -> None:
        from visionflow.rundir import atomic_write_json  # rundir imports this module

        if self.local.is_dir():
            atomic_write_json(self._versions_file, self._synced)


def _local_stat(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _version(info: dict[str, Any]) -> str:
    """What tells two versions of a stored file apart, from its listing entry."""
    return json.dumps(
        {key: str(info[key]) for key in VERSION_FIELDS if key in info}, sort_keys=True
    )


def _temporary(path: Path) -> bool:
    """Files still being written by an atomic write (``.name.XXXX.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")
