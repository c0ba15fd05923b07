"""Segmentation training throughput: DeepLabV3-R50 through the VisionFlow pipeline vs a plain loop.

Both sides train torchvision's ``deeplabv3_resnet50`` (no pretrained weights, no auxiliary head)
on the same procedural shapes label maps (written once as a real COCO dataset), with the same
batch size, SGD settings, cross-entropy with ``ignore_index`` 255 and precision (bf16 autocast
on CUDA, fp32 on CPU). The plain loop holds decoded, normalized images and masks in memory; the
pipeline goes spec -> ``ShapesSegmentationDataModule`` (PNG decoding and mask painting in
DataLoader workers, the ``segmentation_eval`` preset on both sides) -> ``SemanticSegmentationTask``
-> VisionFlow's Lightning Trainer (loggers, checkpointing). Prints images/s for both and
``ratio = pipeline / plain``.

    python benchmarks/segmentation_throughput.py                       # CUDA, 512 px, batch 8
    python benchmarks/segmentation_throughput.py --device cpu --image-size 128 --batch-size 2 \\
        --steps 6 --warmup 2 --workers 0
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import throughput
import torch

from visionflow.pipelines import seed_everything

NET = "deeplabv3_resnet50"
SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}
IGNORE_INDEX = 255


def data_args(args: argparse.Namespace, data_dir: Path) -> dict:
    images = args.batch_size * min(args.warmup + args.steps, 16)
    return {
        "data_dir": str(data_dir),
        "train_images": images,
        "val_images": 1,
        "test_images": 1,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "transforms": {"train": "segmentation_eval", "eval": "segmentation_eval"},
    }


def pipeline_throughput(args: argparse.Namespace, data_dir: Path) -> float:
    task_args = {"net": NET, "optimizer": {"name": "sgd", **SGD}, "scheduler": "none"}
    return throughput.pipeline_images_per_second(
        args,
        "segmentation_throughput",
        {"name": "semantic_segmentation", "args": task_args},
        {"name": "shapes_segmentation", "args": data_args(args, data_dir)},
        data_dir.parent / "runs",
    )


def plain_throughput(args: argparse.Namespace, data_dir: Path) -> float:
    from visionflow.datamodules import ShapesSegmentationDataModule
    from visionflow.tasks.nets.segmentation import build_segmentation_net

    device = torch.device(args.device)
    seed_everything(0)
    datamodule = ShapesSegmentationDataModule(**data_args(args, data_dir))
    datamodule.prepare_data()
    datamodule.setup("fit")
    samples = [datamodule.datasets["train"][i] for i in range(len(datamodule.datasets["train"]))]
    images = torch.stack([image for image, _ in samples]).to(device)  # [N, 3, H, W]
    masks = torch.stack([mask for _, mask in samples]).to(device)  # [N, H, W]
    model = build_segmentation_net(NET, num_classes=len(datamodule.class_names), in_channels=3).to(
        device
    )
    batches = len(images) // args.batch_size

    def loss_of_step(step: int) -> torch.Tensor:
        first = (step % batches) * args.batch_size
        chosen = slice(first, first + args.batch_size)
        logits = model(images[chosen])["out"]
        return torch.nn.functional.cross_entropy(
            logits.float(), masks[chosen], ignore_index=IGNORE_INDEX
        )

    return throughput.plain_images_per_second(args, model, SGD, loss_of_step)


def main() -> None:
    parser = throughput.command_line(__doc__.splitlines()[0], batch_size=8, steps=50, warmup=10)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=4, help="the pipeline's DataLoader workers")
    args = throughput.parse_arguments(parser)
    with tempfile.TemporaryDirectory(prefix="vf-bench-") as folder:
        data_dir = Path(folder) / "shapes"
        plain = plain_throughput(args, data_dir)
        pipeline = pipeline_throughput(args, data_dir)
    setting = f"{NET}, {args.image_size}x{args.image_size}"
    throughput.report(args, setting, plain, pipeline)


if __name__ == "__main__":
    main()
