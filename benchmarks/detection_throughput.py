"""Detection training throughput: Faster R-CNN R50-FPN through the VisionFlow pipeline vs a plain loop.

Both sides train torchvision's ``fasterrcnn_resnet50_fpn`` (no pretrained weights) on the same
procedural shapes dataset (written once as a real COCO dataset), with the same batch size,
optimizer and precision (bf16 autocast on CUDA). The plain loop keeps the decoded images and
targets in memory and calls ``model(images, targets)``; the pipeline goes spec ->
``ShapesDetectionDataModule`` (PNG decoding in DataLoader workers) -> ``ObjectDetectionTask`` ->
VisionFlow's Lightning Trainer. Prints images/s for both and ``ratio = pipeline / plain``.

    python benchmarks/detection_throughput.py                          # CUDA, 512 px
    python benchmarks/detection_throughput.py --device cpu --image-size 128 --steps 5 --warmup 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import throughput
import torch
from PIL import Image

from visionflow.pipelines import seed_everything
from visionflow.rundir import read_json
from visionflow.tasks.nets.detectors import build_detector

NET = "fasterrcnn_resnet50_fpn"
SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}


def pipeline_throughput(args: argparse.Namespace, data_dir: Path) -> float:
    task_args = {
        "net": NET,
        "optimizer": {"name": "sgd", **SGD},
        "scheduler": "none",
        "net_args": {"min_size": args.image_size, "max_size": args.image_size},
    }
    data_args = {
        "data_dir": str(data_dir),
        "train_images": args.images,
        "val_images": 2,
        "test_images": 2,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
    }
    return throughput.pipeline_images_per_second(
        args,
        "detection_throughput",
        {"name": "object_detection", "args": task_args},
        {"name": "shapes_detection", "args": data_args},
        data_dir.parent / "runs",
    )


def load_in_memory(annotations: Path, device: torch.device) -> list[tuple[torch.Tensor, dict]]:
    """Every image as float ``[3, H, W]`` in [0, 1] and its target ``{boxes XYXY, labels}``."""
    dataset = read_json(annotations)
    boxes: dict[int, list] = {image["id"]: [] for image in dataset["images"]}
    for annotation in dataset["annotations"]:
        x, y, w, h = annotation["bbox"]
        boxes[annotation["image_id"]].append((x, y, x + w, y + h, annotation["category_id"]))
    samples = []
    for image in dataset["images"]:
        pixels = np.array(
            Image.open(annotations.parent / "images" / image["file_name"]).convert("RGB")
        )
        rows = torch.tensor(boxes[image["id"]], dtype=torch.float32).reshape(-1, 5)
        target = {"boxes": rows[:, :4].to(device), "labels": rows[:, 4].long().to(device)}
        samples.append(
            (torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).to(device), target)
        )
    return samples


def plain_throughput(args: argparse.Namespace, annotations: Path) -> float:
    device = torch.device(args.device)
    seed_everything(0)
    samples = load_in_memory(annotations, device)
    classes = 1 + len(read_json(annotations)["categories"])
    model = (
        build_detector(NET, num_classes=classes, min_size=args.image_size, max_size=args.image_size)
        .to(device)
        .train()
    )

    def loss_of_step(step: int) -> torch.Tensor:
        first = (step * args.batch_size) % (len(samples) - args.batch_size + 1)
        images, targets = zip(*samples[first : first + args.batch_size])
        return sum(model(list(images), list(targets)).values())

    return throughput.plain_images_per_second(args, model, SGD, loss_of_step)


def main() -> None:
    parser = throughput.command_line(__doc__.splitlines()[0], batch_size=8, steps=50, warmup=10)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--images", type=int, default=256, help="train images to generate")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="DataLoader workers of the pipeline",
    )
    args = throughput.parse_arguments(parser, cudnn_benchmark=False)
    with tempfile.TemporaryDirectory(prefix="vf-det-bench-") as folder:
        data_dir = Path(folder) / "shapes"
        pipeline = pipeline_throughput(args, data_dir)  # generates the dataset on prepare_data
        plain = plain_throughput(args, data_dir / "train" / "annotations.json")
    throughput.report(args, f"{NET}, {args.image_size} px", plain, pipeline)


if __name__ == "__main__":
    main()
