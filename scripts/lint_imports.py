"""Check the import contracts in pyproject.toml ([tool.importlinter]) on the package as installed.

The root folders tasks/, datamodules/, pipelines/ and cluster/ install as visionflow.* subpackages
(setuptools package-dir), which import-linter cannot follow in a source checkout. This lays the
sources out as the wheel does, in a temporary folder, and runs ``lint-imports`` there.

    python scripts/lint_imports.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def installed_layout(destination: Path) -> None:
    """Copy every package folder to where the wheel puts it (``visionflow.tasks`` -> visionflow/tasks)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs = config["package-dir"]
    for package, folder in sorted(package_dirs.items(), key=lambda item: item[0].count(".")):
        target = destination.joinpath(*package.split("."))
        shutil.copytree(
            ROOT / folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="visionflow-imports-") as folder:
        installed_layout(Path(folder))
        shutil.copy(ROOT / "pyproject.toml", folder)
        lint = Path(sys.executable).with_name("lint-imports")
        env = {**os.environ, "PYTHONPATH": folder}
        return subprocess.run(
            [str(lint), "--no-cache"], cwd=folder, env=env, check=False
        ).returncode


if __name__ == "__main__":
    sys.exit(main())
