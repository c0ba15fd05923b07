"""``benchmarks/ray_overhead.py`` runs end to end at tiny sizes (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("ray")

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_benchmark_prints_both_step_times_and_the_ratio():
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "ray_overhead.py"),
            "--workers",
            "2",
            "--model",
            "mlp",
            "--batch-size",
            "4",
            "--steps",
            "3",
            "--warmup",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[-3:-1]] == ["plain", "ray"], done.stdout
    assert "(3 steps)" in lines[-2] and lines[-1].startswith("ratio = ray / plain = ")
