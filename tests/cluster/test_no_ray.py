"""``backend: local`` never imports Ray; importing ``visionflow.cluster`` alone does not either."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

BLOCK_RAY = "import sys; sys.modules['ray'] = None  # any `import ray` now raises ImportError\n"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_RAY + code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_importing_the_cluster_package_does_not_import_ray():
    result = run_python(
        "import visionflow.cluster, visionflow.pipelines\n"
        "loaded = [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
        "assert 'ray' not in loaded\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_local_backend_runs_with_ray_blocked(tmp_path):
    code = f"""
from visionflow.spec import load_spec
from visionflow.pipelines import run
spec = load_spec({str(REPO_ROOT / "examples" / "digits_classification.yaml")!r}, [
    "resources.backend=local", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
    "stages=[fit, test]", "output_dir={tmp_path}"])
results = run(spec)
assert results.metrics["test/acc"] > 0.5, results.metrics
print("OK", results.metrics["test/acc"])
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
