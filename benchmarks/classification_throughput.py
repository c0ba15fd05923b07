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
import tempfile
from pathlib import Path

import numpy as np
import throughput
import torch

from visionflow.pipelines import seed_everything

SGD = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
SGD_SPEC = {"optimizer": {"name": "sgd", **SGD}, "scheduler": "none"}


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
    names = "".join(f"class_{index}\n" for index in range(10))  # random data: any names do
    (folder / "batches.meta.txt").write_text(names)


def pipeline_throughput(args: argparse.Namespace, root: Path) -> float:
    task_args = {"net": args.net, "channels_last": args.device == "cuda", **SGD_SPEC}
    data_args = {
        "root": str(root),
        "batch_size": args.batch_size,
        "val_fraction": 0.0,
        "device": args.device,
        "transforms": {"train": "cifar_eval", "eval": "cifar_eval"},
    }
    return throughput.pipeline_images_per_second(
        args,
        "throughput",
        {"name": "image_classification", "args": task_args},
        {"name": "cifar10", "args": data_args},
        root / "runs",
    )


def plain_throughput(args: argparse.Namespace) -> float:
    from visionflow.registry import NETS

    device = torch.device(args.device)
    seed_everything(0)
    count = args.batch_size * 64
    images = torch.randn(count, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (count,), device=device)
    model = NETS.build(args.net, num_classes=10, in_channels=3, image_size=(32, 32)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = count // args.batch_size
    order = torch.randperm(count, device=device)

    def loss_of_step(step: int) -> torch.Tensor:
        first = (step % batches) * args.batch_size
        index = order[first : first + args.batch_size]
        return loss_fn(model(images[index]), labels[index])

    return throughput.plain_images_per_second(args, model, SGD, loss_of_step)


def main() -> None:
    parser = throughput.command_line(__doc__.splitlines()[0], batch_size=512, steps=300, warmup=30)
    parser.add_argument(
        "--net",
        default="resnet18",
        help="a registered net; `linear` makes compute negligible, so the ratio "
        "measures the framework's per-step overhead",
    )
    parser.add_argument("--images", type=int, default=50_000, help="CIFAR-shaped train images")
    args = throughput.parse_arguments(parser)
    with tempfile.TemporaryDirectory(prefix="vf-bench-") as folder:
        root = Path(folder)
        write_cifar_binary(root, args.images)
        plain = plain_throughput(args)
        pipeline = pipeline_throughput(args, root)
    throughput.report(args, f"{args.net}, 32x32", plain, pipeline)


if __name__ == "__main__":
    main()
