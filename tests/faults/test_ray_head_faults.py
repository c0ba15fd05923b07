"""A loopback head (``visionflow cluster start``) stopped under a running job: ``visionflow
submit --wait`` reports the job failed in one line and exits 1, instead of hanging or dying in a
traceback from Ray's client."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from tests.cluster.test_jobs import write_spec
from tests.conftest import REPO_ROOT
from visionflow.cluster import head, jobs

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def head_address():
    """A head of its own (each test stops it), on loopback without token auth."""
    temp_dir = Path(tempfile.mkdtemp(prefix="vfh-", dir="/tmp"))
    config = head.HeadConfig(
        num_cpus=2, port=head.free_port(), dashboard_port=head.free_port(), temp_dir=str(temp_dir)
    )
    try:
        yield head.start_head(config).dashboard_url, temp_dir
    finally:
        head.stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_until_running(address: str, timeout_s: float = 120) -> str:
    client = jobs.connect(address)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = [j for j in jobs.list_jobs(client) if str(j.status) == "RUNNING"]
        if running:
            return running[0].submission_id
        time.sleep(0.5)
    pytest.fail("the job never ran")


def test_the_head_stopped_under_a_running_job_reports_it_failed(head_address, tmp_path):
    address, temp_dir = head_address
    spec = write_spec(tmp_path, trainer={"max_epochs": 500})
    submitter = subprocess.Popen(
        [sys.executable, "-m", "visionflow", "submit", str(spec), "--address", address, "--wait"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    job_id = wait_until_running(address)
    assert head.stop_head(temp_dir) > 0
    try:
        output, _ = submitter.communicate(timeout=90)  # not hung
    finally:
        submitter.kill()
    assert submitter.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("visionflow: error:")]
    assert errors == [
        f"visionflow: error: job {job_id}: the Ray head at {address} stopped answering "
        "(ConnectionError): the job is reported failed, since its driver ran there"
    ], output[-3000:]
