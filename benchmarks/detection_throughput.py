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
import torch
from PIL import Image
from timing import plain_loop_throughput, timed_pipeline_fit

from visionflow.pipelines import seed_everything
from visionflow.rundir import read_json
from visionflow.spec import parse_spec
from visionflow.tasks.nets.detectors import build_detector

NET = "fasterrcnn_resnet50_fpn"
OPTIMIZER = {
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "scheduler": "none",
}


def pipeline_throughput(args: argparse.Namespace, data_dir: Path) -> float:
    cuda = args.device == "cuda"
    spec = parse_spec(
        {
            "name": "detection_throughput",
            "task": {
                "name": "object_detection",
                "args": {
                    "net": NET,
                    **OPTIMIZER,
                    "net_args": {"min_size": args.image_size, "max_size": args.image_size},
                },
            },
            "data": {
                "name": "shapes_detection",
                "args": {
                    "data_dir": str(data_dir),
                    "train_images": args.images,
                    "val_images": 2,
                    "test_images": 2,
                    "image_size": args.image_size,
                    "batch_size": args.batch_size,
                    "num_workers": args.workers,
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
            },
            "stages": ["fit"],
            "output_dir": str(data_dir.parent / "runs"),
        }
    )
    return args.steps * args.batch_size / timed_pipeline_fit(spec, args.warmup)


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
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=OPTIMIZER["lr"],
        momentum=OPTIMIZER["momentum"],
        weight_decay=OPTIMIZER["weight_decay"],
    )

    def loss_of_step(step: int) -> torch.Tensor:
        first = (step * args.batch_size) % (len(samples) - args.batch_size + 1)
        images, targets = zip(*samples[first : first + args.batch_size])
        return sum(model(list(images), list(targets)).values())

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
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=256, help="train images to generate")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="DataLoader workers of the pipeline",
    )
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    with tempfile.TemporaryDirectory(prefix="vf-det-bench-") as folder:
        data_dir = Path(folder) / "shapes"
        pipeline = pipeline_throughput(args, data_dir)  # generates the dataset on prepare_data
        plain = plain_throughput(args, data_dir / "train" / "annotations.json")
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu x{os.cpu_count()}"
    print(
        f"device: {device}; {NET}, {args.image_size} px, batch {args.batch_size}, "
        f"{args.steps} timed steps"
    )
    print(f"plain loop: {plain:8.1f} img/s")
    print(f"pipeline:   {pipeline:8.1f} img/s")
    print(f"ratio = pipeline / plain = {pipeline / plain:.3f}")


if __name__ == "__main__":
    main()
