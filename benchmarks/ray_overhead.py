"""Ray Train overhead: step time of DDP on Ray Train workers vs plain Lightning DDP.

Both sides train the same model (a ResNet-10: torchvision's BasicBlock ResNet with one block per
stage, 10 classes, or a 2-layer MLP) on the same random 3x32x32 images held in memory, with the
same number of workers, threads per worker, batch size per worker and steps, through the same
Lightning Trainer (no logger, no checkpointing, no progress bar). Only the launch differs:

- *ray*: ``TorchTrainer`` on the embedded Ray (``visionflow.cluster.embedded_ray``), each worker
  builds ``Trainer(strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()])`` and
  ``prepare_trainer`` s it, as ``visionflow.cluster.train_worker`` does for every Ray fit;
- *plain*: ``Trainer(strategy="ddp", devices=N)`` in a fresh ``python ray_overhead.py --side
  plain`` process. ``ddp`` re-runs that command line for ranks 1..N-1 (Lightning's subprocess
  launcher), which is how DDP is launched from a script and the same DDPStrategy that
  RayDDPStrategy subclasses. It runs in its own process tree so that it shares nothing with Ray;
  ``ddp_spawn`` would pickle the model into its workers and is not what a script normally uses.

Rank 0 records ``time.perf_counter()`` at the end of every training batch; the first ``--warmup``
steps are dropped and the rest are the steady-state step times. Ray runs only during the ray side,
so its daemons (GCS, raylet) count against it. Prints the median and mean step time of both and
``ratio = ray / plain`` (of the medians; the goal is <= 1.05).

    python benchmarks/ray_overhead.py                          # 2 CPU workers, 1 thread each
    python benchmarks/ray_overhead.py --workers 2 --steps 100 --rounds 3
    python benchmarks/ray_overhead.py --accelerator gpu        # one GPU per worker

A benchmark script, not library code: it imports Ray itself, the way ``cluster/`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10


# ------------------------------------------------------------------------ the shared training run


class Classifier(LightningModule):
    def __init__(self, model: str):
        super().__init__()
        self.net = build_net(model)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return nn.functional.cross_entropy(self.net(images), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def build_net(model: str) -> nn.Module:
    if model == "resnet10":
        from torchvision.models.resnet import BasicBlock, ResNet

        return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=NUM_CLASSES)
    features = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
    return nn.Sequential(
        nn.Flatten(), nn.Linear(features, 512), nn.ReLU(), nn.Linear(512, NUM_CLASSES)
    )


class StepClock(Callback):
    """``perf_counter`` at the end of every training batch on rank 0."""

    def __init__(self):
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_rank == 0:
            if trainer.strategy.root_device.type == "cuda":
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())


def fit_and_time(config: dict, **trainer_args) -> dict:
    """Train ``warmup + steps`` steps in this worker: ``{"rank", "world_size", "seconds"}``, the
    steady-state step times (rank 0 only).

    ``prepare`` (Ray's ``prepare_trainer``) is applied to the Trainer before it fits."""
    prepare = trainer_args.pop("prepare", lambda trainer: trainer)
    torch.set_num_threads(config["threads"])
    torch.manual_seed(0)
    steps = config["warmup"] + config["steps"]
    count = steps * config["batch_size"] * config["workers"]  # one epoch: no epoch boundaries
    data = TensorDataset(torch.randn(count, *IMAGE_SHAPE), torch.randint(0, NUM_CLASSES, (count,)))
    clock = StepClock()
    trainer = prepare(
        Trainer(
            max_steps=steps,
            accelerator=config["accelerator"],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[clock],
            **trainer_args,
        )
    )
    trainer.fit(
        Classifier(config["model"]),
        train_dataloaders=DataLoader(data, batch_size=config["batch_size"], shuffle=True),
    )
    ends = clock.ends[max(config["warmup"] - 1, 0) :]  # the end of the last warm-up step onwards
    return {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "seconds": [b - a for a, b in zip(ends, ends[1:])],
    }


# ----------------------------------------------------------------------------------- the two sides


def ray_worker(config: dict) -> dict:
    """Ray Train's training function: the Trainer as ``visionflow.cluster.train_worker`` builds it."""
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    return fit_and_time(
        config,
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        devices="auto",
        prepare=prepare_trainer,
    )


def ray_side(config: dict, storage: Path) -> list[float]:
    """Step times of one Ray Train fit on a fresh embedded Ray (the ones RayFitBackend uses)."""
    from ray.train import LoggingConfig, RunConfig, ScalingConfig

    from visionflow.cluster.local import embedded_ray, scoped_env
    from visionflow.cluster.train import FIT_ENV, trainer_class

    gpu = config["accelerator"] == "gpu"
    per_worker = {"CPU": config["threads"], **({"GPU": 1} if gpu else {})}
    with (
        embedded_ray(num_cpus=config["workers"] * config["threads"], log_to_driver=False),
        scoped_env(FIT_ENV),
    ):
        trainer = trainer_class(embedded=True)(
            ray_worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(
                num_workers=config["workers"], use_gpu=gpu, resources_per_worker=per_worker
            ),
            run_config=RunConfig(
                name="overhead",
                storage_path=str(storage),
                logging_config=LoggingConfig(log_level="WARNING"),
            ),
        )
        return checked("ray", trainer.fit().return_value, config)


def plain_side(config: dict, result: Path) -> list[float]:
    """Step times of plain Lightning DDP, in a fresh process (Lightning re-runs it per rank)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--side",
        "plain",
        "--config",
        json.dumps(config),
        "--result",
        str(result),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(config["threads"]))  # what Ray Train sets
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"plain DDP failed (exit code {done.returncode}):\n"
            + "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        )
    return checked("plain", json.loads(result.read_text()), config)


def plain_rank(config: dict, result: Path) -> None:
    """One rank of the plain side (``--side plain``): rank 0 writes the step times."""
    timed = fit_and_time(config, strategy="ddp", devices=config["workers"])
    if timed["rank"] == 0:
        result.write_text(json.dumps(timed))


def checked(side: str, timed: dict, config: dict) -> list[float]:
    """Rank 0's step times, after checking that the side ran ``workers`` DDP ranks."""
    if timed["world_size"] != config["workers"]:
        raise SystemExit(f"{side}: {timed['world_size']} DDP ranks, not {config['workers']}")
    return timed["seconds"]


# ------------------------------------------------------------------------------------------- main


def describe(name: str, seconds: list[float]) -> str:
    deciles = statistics.quantiles(seconds, n=10) if len(seconds) > 1 else seconds * 9
    return (
        f"{name:6s} median {1000 * statistics.median(seconds):7.1f} ms/step   "
        f"mean {1000 * statistics.fmean(seconds):7.1f}   p10-p90 {1000 * deciles[0]:.1f}-"
        f"{1000 * deciles[-1]:.1f}   ({len(seconds)} steps)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="DDP ranks on both sides")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (Ray CPUs) per worker"
    )
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--model", choices=["resnet10", "mlp"], default="resnet10")
    parser.add_argument("--batch-size", type=int, default=32, help="per worker")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    parser.add_argument("--rounds", type=int, default=1, help="plain, ray, plain, ray, ...")
    parser.add_argument("--side", choices=["plain"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "plain":
        plain_rank(json.loads(args.config), Path(args.result))
        return
    config = {
        key: getattr(args, key)
        for key in ("workers", "threads", "accelerator", "model", "batch_size", "steps", "warmup")
    }
    plain, ray = [], []
    with tempfile.TemporaryDirectory(prefix="vf-overhead-") as folder:
        for round_index in range(args.rounds):
            plain.append(plain_side(config, Path(folder) / f"plain-{round_index}.json"))
            ray.append(ray_side(config, Path(folder) / f"ray-{round_index}"))
            print(
                f"round {round_index + 1}: median ms/step  plain "
                f"{1000 * statistics.median(plain[-1]):.1f}  ray "
                f"{1000 * statistics.median(ray[-1]):.1f}",
                flush=True,
            )
    plain, ray = sum(plain, []), sum(ray, [])
    device = torch.cuda.get_device_name() if args.accelerator == "gpu" else f"cpu x{os.cpu_count()}"
    print(
        f"device: {device}; {args.model}, {args.workers} workers x {args.threads} threads, "
        f"batch {args.batch_size} per worker, {args.steps} timed steps x {args.rounds} rounds "
        f"after {args.warmup} warm-up steps"
    )
    print(describe("plain", plain))
    print(describe("ray", ray))
    print(
        f"ratio = ray / plain = {statistics.median(ray) / statistics.median(plain):.3f}  "
        f"(means: {statistics.fmean(ray) / statistics.fmean(plain):.3f})"
    )


if __name__ == "__main__":
    main()
