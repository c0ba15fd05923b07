"""The classifier behind FID, KID and the class accuracy of samples: features and predicted classes.

It is an image-classification net trained on the same data as the generative model, either read
from a checkpoint of the ``image_classification`` task (``classifier_checkpoint``, loaded with
``weights_only=True``) or trained here in a few epochs (LeNet-5: seconds on digits or MNIST), so a
run scores its samples on the CPU without any download. Its features are the input of its
classifier head (LeNet-5: 84 values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from visionflow.errors import CheckpointError, SpecError
from visionflow.tasks.nets import build_net
from visionflow.tasks.nets.transfer import head_path

#: the classifier trained when no checkpoint is given: LeNet-5, whose two 5x5 convs and pools
#: need 16 px; on smaller images (digits at their own 8 px) an MLP of 256 hidden units
DEFAULT_NET, SMALL_IMAGE_NET, LENET_MIN_SIZE = "lenet5", "mlp", 16


class FeatureClassifier:
    """``(features [B, D], logits [B, K]) = classifier(images [B, C, H, W])`` (normalized images,
    as the datamodule gives them). Not a submodule of the task: it is no part of its checkpoint."""

    def __init__(self, net: nn.Module):
        self.net = net.eval().requires_grad_(False)
        self._features: torch.Tensor | None = None
        net.get_submodule(head_path(net)).register_forward_pre_hook(self._keep_features)

    def _keep_features(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._features = inputs[0].flatten(1)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.net.to(images.device)
        logits = self.net(images)
        return self._features, logits


def load_classifier(
    path: str, *, num_classes: int, in_channels: int, image_size: tuple[int, int] | None
) -> FeatureClassifier:
    """The net of an ``image_classification`` checkpoint; errors name ``classifier_checkpoint``."""
    if not Path(path).is_file():
        raise CheckpointError(
            f"classifier_checkpoint: {path} does not exist",
            hint="a .ckpt of the image_classification task on the same data",
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams: dict[str, Any] = checkpoint.get("hyper_parameters", {})
    wanted = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": list(image_size) if image_size else None,
    }
    for key, value in wanted.items():
        found = list(hparams[key]) if key == "image_size" and hparams.get(key) else hparams.get(key)
        if found != value:
            raise SpecError(
                f"classifier_checkpoint: {path} has {key}={found}, the data {value}",
                hint="train the classifier on the same data and image size",
            )
    net = build_net(
        hparams["net"],
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        net_args=hparams.get("net_args"),
    )
    state = {
        key.removeprefix("net."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("net.")
    }
    net.load_state_dict(state)
    return FeatureClassifier(net)


def train_classifier(
    loader: Any,
    *,
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int] | None,
    epochs: int,
    device: torch.device,
    seed: int = 0,
) -> FeatureClassifier:
    """LeNet-5 (an MLP below 16 px) trained for ``epochs`` on ``loader``'s ``(images, labels)``
    batches (Adam); also inside Lightning's evaluation loops, which run in inference mode."""
    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        small = image_size is not None and min(image_size) < LENET_MIN_SIZE
        net = build_net(
            SMALL_IMAGE_NET if small else DEFAULT_NET,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
        ).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(epochs):
            for images, labels in loader:
                loss = F.cross_entropy(net(images.to(device)), labels.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return FeatureClassifier(net)
