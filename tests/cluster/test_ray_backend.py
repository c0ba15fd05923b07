"""The Ray backend (``visionflow.cluster``): embedded Ray, Ray Train fit, errors, resume.

The tiny task and datamodule below are registered by this module; the Ray workers import it by
name (``RayFitBackend`` sends the modules that registered the spec's components), which is also
what a user's own registered components rely on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import visionflow.cluster  # noqa: F401  (before ray: sets Ray's log filter at ray's import)

pytest.importorskip("ray")

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import REPO_ROOT
from visionflow import cluster
from visionflow.batches import DatasetInfo, ImageClassificationBatch
from visionflow.cluster.train import WorkerFailure, provider_modules, worker_error
from visionflow.datamodules import VisionDataModule
from visionflow.errors import DataError, RunError, SpecError
from visionflow.pipelines import run as run_local
from visionflow.pipelines.console import epoch_line
from visionflow.registry import DATAMODULES, TASKS
from visionflow.spec import load_spec, parse_spec
from visionflow.tasks.base import VisionTask

pytestmark = pytest.mark.ray

# ------------------------------------------------------------------ tiny task + datamodule


def _collate(items):
    images, targets = zip(*items)
    return ImageClassificationBatch(torch.stack(images), torch.stack(targets))


@DATAMODULES.register("ray_test_blobs", batch=ImageClassificationBatch)
class BlobsDataModule(VisionDataModule):
    """Four Gaussian blobs as 1x4x4 images: separable, so a linear model learns it in an epoch."""

    def __init__(self, batch_size: int = 32, size: int = 256, seed: int = 0):
        super().__init__()
        self.batch_size, self.size, self.seed = batch_size, size, seed

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            num_classes=4, class_names=("a", "b", "c", "d"), in_channels=1, image_size=(4, 4)
        )

    def _split(self, offset: int) -> TensorDataset:
        generator = torch.Generator().manual_seed(self.seed + offset)
        targets = torch.arange(self.size) % 4
        centers = torch.eye(16)[targets * 4] * 4.0
        images = (centers + torch.randn(self.size, 16, generator=generator)).view(-1, 1, 4, 4)
        return TensorDataset(images, targets)

    def setup(self, stage: str | None = None) -> None:
        self.train, self.val, self.test = self._split(0), self._split(1), self._split(2)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, collate_fn=_collate)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size, collate_fn=_collate)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=self.batch_size, collate_fn=_collate)


@TASKS.register("ray_test_linear", batch=ImageClassificationBatch)
class LinearTask(VisionTask):
    """Linear classifier; ``fail_at_epoch`` raises inside training_step (the worker-error test)."""

    checkpoint_monitor = ("val/acc", "max")

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int] | None = None,
        class_names: list[str] | None = None,
        lr: float = 0.1,
        fail_at_epoch: int = -1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)

    def _step(self, batch: ImageClassificationBatch, stage: str):
        logits = self.model(batch.images.flatten(1))
        loss = nn.functional.cross_entropy(logits, batch.targets)
        acc = (logits.argmax(1) == batch.targets).float().mean()
        self.log(f"{stage}/loss", loss, on_epoch=True, on_step=False, sync_dist=True)
        self.log(f"{stage}/acc", acc, on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        if self.current_epoch == self.hparams.fail_at_epoch:
            raise ValueError(f"boom at epoch {self.current_epoch}")
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


# ------------------------------------------------------------------------------- fixtures

DIGITS = REPO_ROOT / "examples" / "digits_classification.yaml"
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.fixture(scope="module")
def local_ray():
    """One embedded Ray (2 CPUs) for the module; on exit, checks that it is gone with its temp dir."""
    import ray

    assert not ray.is_initialized()
    with cluster.embedded_ray(num_cpus=2) as info:
        assert info.started and info.temp_dir.name.startswith("vf-ray-")
        assert len(str(info.temp_dir)) < 40  # Ray's socket paths under it must stay < 107 chars
        yield info
    assert not ray.is_initialized()
    assert not info.temp_dir.exists()


def toy_spec(tmp_path: Path, **task_args) -> dict:
    return {
        "name": "toy",
        "seed": 0,
        "task": {"name": "ray_test_linear", "args": task_args},
        "data": {"name": "ray_test_blobs"},
        "trainer": {"max_epochs": 3},
        "stages": ["fit", "test"],
        "resources": {"backend": "ray", "num_workers": 2},
        "output_dir": str(tmp_path / "runs"),
    }


def digits_spec(tmp_path: Path, backend: str, epochs: int, extra: list[str] = ()):
    return load_spec(
        DIGITS,
        [
            f"output_dir={tmp_path / backend}",
            f"resources.backend={backend}",
            f"trainer.max_epochs={epochs}",
            "stages=[fit, test]",
            *extra,
        ],
    )


# ----------------------------------------------------------------------------------- tests


def test_digits_end_to_end_on_two_ray_workers(local_ray, tmp_path):
    """The demo spec, 3 epochs, 2 CPU workers: rank 0 writes the run directory, the driver tests."""
    spec = digits_spec(tmp_path, "ray", epochs=3)
    assert spec.resources.num_workers == 2
    results = cluster.run(spec)
    run_dir = results.run_dir
    assert results.metrics["test/acc"] > 0.85, results.metrics
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["test/acc"] == results.metrics["test/acc"]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    # one CSV logger (rank 0): each epoch's validation row appears once
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    epochs = [
        row.split(",")[header.index("epoch")]
        for row in rows[1:]
        if row.split(",")[header.index("val/acc")]
    ]
    assert epochs == ["0", "1", "2"]
    # Ray Train got one report per epoch, each with a snapshot of last.ckpt
    (ray_run,) = (run_dir / "ray").glob("fit-*")
    snapshots = sorted(ray_run.glob("checkpoint_*/last.ckpt"))
    assert len(snapshots) == 3
    assert not list((run_dir / "ray").glob(".report-*"))  # staging dirs moved into place


def test_ray_listens_on_loopback_only(local_ray):
    """Every socket the driver and the Ray processes it started listen on is a loopback one."""
    import psutil
    import ray

    @ray.remote(num_cpus=0)
    class Probe:  # a live worker process (core workers run a gRPC server)
        def pid(self):
            return os.getpid()

    probe = Probe.remote()
    ray.get(probe.pid.remote())
    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    listening = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        listening += [
            (process.name(), c.laddr.ip, c.laddr.port)
            for c in connections
            if c.status == psutil.CONN_LISTEN
        ]
    ray.kill(probe)
    names = {name for name, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening
    assert all(ip in LOOPBACK for _, ip, _ in listening), listening


def test_worker_exception_is_a_run_error_and_the_run_resumes(local_ray, tmp_path):
    """A worker raising becomes one RunError with the worker's message (tracebacks in errors.txt);
    ``cluster.resume`` then continues the fit from the last checkpoint on Ray workers."""
    with pytest.raises(RunError) as failure:
        cluster.run(parse_spec(toy_spec(tmp_path, fail_at_epoch=1)))
    message = str(failure.value)
    assert "fit failed on Ray worker rank" in message and "ValueError: boom at epoch 1" in message
    assert len(message.splitlines()) == 2  # message + hint, no traceback
    (run_dir,) = (tmp_path / "runs" / "toy").iterdir()
    errors = next((run_dir / "ray").glob("fit-*/errors.txt")).read_text()
    assert "Traceback" in errors and "training_step" in errors
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()  # epoch 0 finished

    spec_file = run_dir / "spec.resolved.yaml"  # "fix the bug" and resume
    raw = yaml.safe_load(spec_file.read_text())
    raw["task"]["args"]["fail_at_epoch"] = -1
    spec_file.write_text(yaml.safe_dump(raw))
    results = cluster.resume(run_dir)
    assert results.run_dir == run_dir and results.metrics["test/acc"] > 0.9
    resumed = sorted((run_dir / "ray").glob("fit-*"))[-1]
    reported = sorted(resumed.glob("checkpoint_*/last.ckpt"))
    assert len(reported) == 2  # epochs 1 and 2 only: the fit continued from epoch 0's checkpoint


def test_too_many_workers_fail_fast(local_ray, tmp_path):
    spec = parse_spec({**toy_spec(tmp_path), "resources": {"backend": "ray", "num_workers": 3}})
    with pytest.raises(SpecError, match="needs 3 CPU .* cluster has 2 CPU"):
        with cluster.embedded_ray():  # reuses the module's Ray (2 CPUs)
            run_local(spec, fit_backend=cluster.RayFitBackend())


@pytest.mark.slow
def test_local_and_ray_reach_the_same_accuracy(local_ray, tmp_path):
    """Same spec and seed, 4 epochs, same global batch: 1 local process with batch 32 vs 2 DDP
    workers with 16 each. Not bitwise equal (different data order per rank), but the same accuracy
    within noise (measured: local 0.9721, Ray 0.9666)."""
    local = run_local(digits_spec(tmp_path, "local", epochs=4))
    on_ray = cluster.run(digits_spec(tmp_path, "ray", epochs=4, extra=["data.args.batch_size=16"]))
    acc_local, acc_ray = local.metrics["test/acc"], on_ray.metrics["test/acc"]
    print(f"test/acc local {acc_local:.4f} ray {acc_ray:.4f}")
    assert acc_local > 0.93 and acc_ray > 0.93
    assert abs(acc_local - acc_ray) < 0.03


# ---------------------------------------------------------------------- no Ray running


def test_worker_error_keeps_visionflow_errors_and_writes_tracebacks(tmp_path):
    from ray.train import WorkerGroupError

    data_error = WorkerFailure(
        "DataError",
        "x.csv: line 3: bad label",
        "Traceback ...\nDataError",
        DataError("x.csv: line 3: bad label", hint="fix the label"),
    )
    crash = WorkerFailure("RuntimeError", "Connection reset by peer [gloo]", "Traceback ...")
    error = worker_error(WorkerGroupError("failed", {0: crash, 1: data_error}), tmp_path)
    assert isinstance(error, DataError) and error.hint == "fix the label"
    assert error.message == "x.csv: line 3: bad label [on Ray worker rank 1 (and 1 other rank)]"
    assert "--- rank 0: RuntimeError" in (tmp_path / "errors.txt").read_text()

    boom = WorkerFailure("ValueError", "boom", "Traceback ...")
    error = worker_error(WorkerGroupError("failed", {0: crash, 1: boom}), tmp_path)
    assert isinstance(error, RunError)  # rank 1's error is the cause, rank 0's a consequence
    assert error.message == "fit failed on Ray worker rank 1 (and 1 other rank): ValueError: boom"


def test_provider_modules_travel_to_workers(tmp_path):
    spec = parse_spec(toy_spec(tmp_path))
    assert provider_modules(spec) == [__name__]
    digits = load_spec(DIGITS)
    assert provider_modules(digits) == [
        "visionflow.tasks.classification",
        "visionflow.datamodules.digits",
    ]


def test_epoch_line():
    line = epoch_line(2, 12, {"val/acc": 0.97222, "train/loss": 0.2, "lr-AdamW": 0.003}, 1.93)
    assert line == "epoch  3/12  train/loss 0.2000  val/acc 0.9722  (1.9 s)"
