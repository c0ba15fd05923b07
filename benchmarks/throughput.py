"""What the training-throughput benchmarks (classification, detection, segmentation) share: their
command line, the pipeline side's fit spec, the plain loop's SGD, and the report.

Each script brings only what differs: the data it writes, the task and datamodule arguments, and
the plain loop's ``loss_of_step``. Run the scripts as scripts (this folder is on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from timing import plain_loop_throughput, timed_pipeline_fit

from visionflow.spec import parse_spec


def command_line(
    description: str, *, batch_size: int, steps: int, warmup: int
) -> argparse.ArgumentParser:
    """``--device`` (CUDA when present), ``--batch-size``, ``--steps`` (timed) and ``--warmup``
    (untimed) with the script's defaults; the script adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    return parser


def parse_arguments(
    parser: argparse.ArgumentParser, *, cudnn_benchmark: bool = True
) -> argparse.Namespace:
    """The parsed command line; quiets albumentations' update check and, on CUDA, lets cuDNN pick
    its fastest kernels (``cudnn_benchmark``) for the fixed input shapes."""
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.device == "cuda" and cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    return args


def pipeline_images_per_second(
    args: argparse.Namespace,
    name: str,
    task: Mapping[str, Any],
    data: Mapping[str, Any],
    output_dir: Path,
) -> float:
    """Images/s of training steps ``warmup .. warmup + steps`` of a fit-only spec of ``task`` and
    ``data`` (``{"name": ..., "args": ...}``), built as ``visionflow run`` builds it: bf16 autocast
    on CUDA, fp32 on CPU, no validation, no progress bar."""
    cuda = args.device == "cuda"
    spec = parse_spec(
        {
            "name": name,
            "task": dict(task),
            "data": dict(data),
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
            "output_dir": str(output_dir),
        }
    )
    return args.steps * args.batch_size / timed_pipeline_fit(spec, args.warmup)


def plain_images_per_second(
    args: argparse.Namespace,
    model: torch.nn.Module,
    sgd: Mapping[str, float],
    loss_of_step: Callable[[int], torch.Tensor],
) -> float:
    """Images/s of the hand-written loop: ``loss_of_step(step)`` (a batch of ``args.batch_size``
    through ``model``), backward, a step of SGD with ``sgd``'s ``lr``, ``momentum`` and
    ``weight_decay``."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=sgd["lr"], momentum=sgd["momentum"], weight_decay=sgd["weight_decay"]
    )
    return plain_loop_throughput(
        loss_of_step,
        optimizer,
        device=torch.device(args.device),
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
    )


def report(args: argparse.Namespace, setting: str, plain: float, pipeline: float) -> None:
    """The device, ``setting`` (net and image size), both images/s and their ratio, and what the
    pipeline costs per step more than the plain loop."""
    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"cpu x{os.cpu_count()} ({torch.get_num_threads()} torch threads)"
    )
    print(
        f"device: {device}; {setting}, batch {args.batch_size}, "
        f"{args.steps} timed steps after {args.warmup}"
    )
    print(f"plain loop: {plain:10.1f} img/s")
    print(f"pipeline:   {pipeline:10.1f} img/s")
    overhead_ms = 1000 * args.batch_size * (1 / pipeline - 1 / plain)
    print(
        f"ratio = pipeline / plain = {pipeline / plain:.3f}  "
        f"(pipeline costs {overhead_ms:+.2f} ms per step more)"
    )
