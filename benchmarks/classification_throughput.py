"""Training throughput: ResNet-18 on 32x32 images through the VisionFlow pipeline vs a plain loop.

Both sides train the same torchvision ResNet-18 (10 classes) with the same batch size, SGD
settings, precision (bf16 autocast on CUDA, fp32 on CPU) and channels_last, on the same CIFAR-shaped
data held in memory (on the GPU for CUDA). The plain loop indexes one tensor and steps the
optimizer; the pipeline goes spec -> CIFAR10DataModule (real CIFAR binary files written to a
temp folder, ``device: cuda``) -> ImageClassificationTask -> VisionFlow's Lightning Trainer
(loggers, checkpointing and all). Prints images/s for both and ``ratio = pipeline / plain``.

    python benchmarks/classification_throughput.py                 # CUDA if present
    python benchmarks/classification_throughput.py --device cpu --steps 20 --batch-size 64
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import plain_loop_throughput, timed_pipeline_fit

from visionflow.pipelines import seed_everything
from visionflow.spec import parse_spec

SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "none"}


def write_cifar_binary(root: Path, images: int, seed: int = 0) -> None:
    """Random CIFAR-10 in the official binary layout: records of 1 label byte + 3072 pixels."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_file = -(-images // 5)
    for name, count in [
        *((f"data_batch_{i}.bin", per_file) for i in range(1, 6)),
        ("test_batch.bin", 1000),
    ]:
        records = rng.integers(0, 256, (count, 3073), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, count)
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text(
        "\n".join(
            [
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ]
        )
        + "\n"
    )


def pipeline_throughput(args: argparse.Namespace, root: Path) -> float:
    cuda = args.device == "cuda"
    spec = parse_spec(
        {
            "name": "throughput",
            "task": {
                "name": "image_classification",
                "args": {"net": args.net, "channels_last": cuda, **SGD},
            },
            "data": {
                "name": "cifar10",
                "args": {
                    "root": str(root),
                    "batch_size": args.batch_size,
                    "val_fraction": 0.0,
                    "device": args.device,
                    "transforms": {"train": "cifar_eval", "eval": "cifar_eval"},
                },
            },
            "trainer": {
                "max_steps": args.warmup + args.steps,
                "accelerator": "gpu" if cuda else "cpu",
                "devices": 1,
                "precision": "bf16-mixed" if cuda else "32-true",
                "enable_progress_bar": False,
                "limit_val_batches": 0,
                "num_sanity_val_steps": 0,
                "log_every_n_steps": 50,
            },
            "stages": ["fit"],
            "output_dir": str(root / "runs"),
        }
    )
    return args.steps * args.batch_size / timed_pipeline_fit(spec, args.warmup)


def plain_throughput(args: argparse.Namespace) -> float:
    from visionflow.registry import NETS

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    seed_everything(0)
    count = args.batch_size * 64
    images = torch.randn(count, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (count,), device=device)
    model = NETS.build(args.net, num_classes=10, in_channels=3, image_size=(32, 32)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=SGD["lr"], momentum=SGD["momentum"], weight_decay=SGD["weight_decay"]
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = count // args.batch_size
    order = torch.randperm(count, device=device)

    def loss_of_step(step: int) -> torch.Tensor:
        first = (step % batches) * args.batch_size
        index = order[first : first + args.batch_size]
        return loss_fn(model(images[index]), labels[index])

    return plain_loop_throughput(
        loss_of_step,
        optimizer,
        device=device,
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--net",
        default="resnet18",
        help="a registered net; `linear` makes compute negligible, so the ratio "
        "measures the framework's per-step overhead",
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--images", type=int, default=50_000, help="CIFAR-shaped train images")
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix="vf-bench-") as folder:
        root = Path(folder)
        write_cifar_binary(root, args.images)
        plain = plain_throughput(args)
        pipeline = pipeline_throughput(args, root)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu x{os.cpu_count()}"
    print(f"device: {device}; {args.net}, 32x32, batch {args.batch_size}, {args.steps} timed steps")
    print(f"plain loop: {plain:10.0f} img/s")
    print(f"pipeline:   {pipeline:10.0f} img/s")
    overhead_ms = 1000 * args.batch_size * (1 / pipeline - 1 / plain)
    print(
        f"ratio = pipeline / plain = {pipeline / plain:.3f}  "
        f"(pipeline costs {overhead_ms:+.2f} ms per step more)"
    )


if __name__ == "__main__":
    main()
