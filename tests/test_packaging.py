"""The wheel holds every package under its visionflow.* name (package-dir mapping)."""

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = [
    "visionflow",
    "visionflow/evaluation",
    "visionflow/tasks",
    "visionflow/tasks/nets",
    "visionflow/datamodules",
    "visionflow/datamodules/transforms",
    "visionflow/pipelines",
    "visionflow/cluster",
]


@pytest.mark.slow
def test_wheel_contains_every_package(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    wheel = next(tmp_path.glob("visionflow-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names, f"{package} missing from the wheel"
    for source_dir in ("visionflow", "tasks", "datamodules", "pipelines", "cluster"):
        package = "visionflow" if source_dir == "visionflow" else f"visionflow/{source_dir}"
        for path in (REPO_ROOT / source_dir).rglob("*.py"):
            relative = path.relative_to(REPO_ROOT / source_dir).as_posix()
            assert f"{package}/{relative}" in names, f"{path} not packaged"
    assert not any(n.startswith(("tasks/", "pipelines/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "visionflow = visionflow.cli:console" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
