"""``--address``: join a running Ray head from ``visionflow run`` / ``eval run`` instead of an
embedded Ray; unreachable addresses fail within seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from tests.cluster.test_head import loopback_head
from visionflow.cli import main
from visionflow.cluster import head

pytestmark = pytest.mark.ray

SPEC = {
    "name": "joined",
    "seed": 0,
    "task": {"name": "image_classification", "args": {"net": "linear"}},
    "data": {"name": "digits", "args": {"batch_size": 128}},
    "trainer": {"max_epochs": 1, "enable_progress_bar": False},
    "stages": ["fit", "test", {"evaluate": {"shards": 2}}],
    "resources": {"backend": "ray", "num_workers": 1},
}


@pytest.fixture(scope="module")
def running_head() -> head.HeadInfo:
    with loopback_head() as info:
        yield info


def write_spec(folder: Path, **changes) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "output_dir": str(folder / "runs"), **changes}))
    return path


@pytest.mark.slow
def test_a_run_joins_the_head_and_leaves_it_running(running_head, tmp_path):
    import ray

    assert main(["run", str(write_spec(tmp_path)), "--address", running_head.gcs_address]) == 0
    (run_dir,) = (tmp_path / "runs" / "joined").iterdir()
    stages = json.loads((run_dir / "summary.json").read_text())["stages"]
    assert stages["evaluate"]["test/acc"] == pytest.approx(stages["test"]["test/acc"], abs=1e-6)
    assert not ray.is_initialized()  # the driver left ...
    assert head.cluster_status(running_head.dashboard_url)  # ... the head runs on


def test_an_unreachable_address_fails_within_seconds(tmp_path, capsys):
    start = time.monotonic()
    address = f"127.0.0.1:{head.free_port()}"
    assert main(["run", str(write_spec(tmp_path)), "--address", address]) == 2
    assert time.monotonic() - start < 15
    assert f"--address {address}: cannot reach a Ray head there" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--address", "nowhere"], "expected HOST:PORT"),
        (["--backend", "local", "--address", "127.0.0.1:6379"], "resources.backend is 'local'"),
    ],
)
def test_bad_addresses_and_a_local_backend_are_refused(tmp_path, capsys, argv, message):
    assert main(["run", str(write_spec(tmp_path)), *argv]) == 2
    assert message in capsys.readouterr().err
