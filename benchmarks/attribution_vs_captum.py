"""Attribution maps: our implementations against Captum's (the reference), same net, same inputs.

    .venv/bin/python benchmarks/attribution_vs_captum.py --images 64 --size 32

For saliency, guided backpropagation, Grad-CAM and occlusion on a LeNet-5 it checks that the maps
agree (max abs difference) and prints the best of ``--repeats`` wall times and
``ratio = ours / reference`` from one run. Needs captum (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import time

import torch
from captum import attr as captum

from visionflow.tasks.nets.classic import lenet5
from visionflow.tasks.understanding import (
    grad_cam,
    guided_backprop,
    occlusion,
    saliency,
)


def best_time(function, repeats: int) -> tuple[float, torch.Tensor]:
    """The fastest of ``repeats`` calls (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = lenet5(num_classes=10, in_channels=1, image_size=[args.size] * 2).eval()
    images = torch.randn(args.images, 1, args.size, args.size)
    targets = torch.randint(0, 10, (args.images,))
    patch, stride = args.size // 8, args.size // 16
    probabilities = lambda x: net(x).softmax(dim=1)
    pairs = {
        "saliency": (
            lambda: saliency(net, images, targets),
            lambda: captum.Saliency(net).attribute(images, target=targets, abs=False),
        ),
        "guided_backprop": (
            lambda: guided_backprop(net, images, targets),
            lambda: captum.GuidedBackprop(net).attribute(images, target=targets),
        ),
        "grad_cam": (
            lambda: grad_cam(net, images, targets, "features.3", upsample=False),
            lambda: captum.LayerGradCam(net, net.features[3]).attribute(
                images, target=targets, relu_attributions=True
            )[:, 0],
        ),
        "occlusion": (
            lambda: occlusion(net, images, targets, patch=patch, stride=stride),
            lambda: captum.Occlusion(probabilities).attribute(
                images,
                target=targets,
                sliding_window_shapes=(1, patch, patch),
                strides=(1, stride, stride),
                baselines=0.0,
            )[:, 0],
        ),
    }
    print(
        f"{args.images} images {args.size}x{args.size}, LeNet-5, torch threads "
        f"{torch.get_num_threads()}"
    )
    for name, (ours, reference) in pairs.items():
        ours_s, ours_map = best_time(ours, args.repeats)
        ref_s, ref_map = best_time(reference, args.repeats)
        difference = float((ours_map - ref_map).detach().abs().max())
        print(
            f"{name:16s} ours {ours_s * 1e3:8.1f} ms  captum {ref_s * 1e3:8.1f} ms  "
            f"ratio = ours / reference = {ours_s / ref_s:.2f}  max |diff| {difference:.1e}"
        )


if __name__ == "__main__":
    main()
