"""The classic small classifiers: a linear (softmax / SVM) classifier, an MLP and LeNet-5.

Every builder takes ``(*, num_classes, in_channels, image_size, dropout, **net_args)`` and returns a
module mapping images ``[B, C, H, W]`` to logits ``[B, num_classes]``, with its head marked.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.families import CLASSIFICATION_NETS
from visionflow.tasks.nets.transfer import mark_head

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
Activation = Literal["relu", "tanh", "gelu"]


def image_hw(image_size: list[int] | tuple[int, int] | None, net: str) -> tuple[int, int]:
    """``(H, W)`` of the images a net is built for; a SpecError when the data did not fix it."""
    if image_size is None:
        raise SpecError(
            f"image_size: net {net!r} needs a fixed image size, and the data did not report one",
            hint="set image_size: [H, W]",
        )
    if len(image_size) != 2 or any(int(s) < 1 for s in image_size):
        raise SpecError(f"image_size: expected [H, W] with positive sizes, got {image_size}")
    return int(image_size[0]), int(image_size[1])


@CLASSIFICATION_NETS.register("linear")
def linear(
    *,
    num_classes: int,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    dropout: float = 0.0,
) -> nn.Module:
    """Linear classifier on flattened pixels (softmax or multiclass SVM, by the task's loss)."""
    height, width = image_hw(image_size, "linear")
    model = nn.Sequential(
        nn.Flatten(),  # [B, C*H*W]
        nn.Dropout(dropout),
        nn.Linear(in_channels * height * width, num_classes),  # [B, K]
    )
    return mark_head(model, "2")


@CLASSIFICATION_NETS.register("mlp")
def mlp(
    *,
    num_classes: int,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    dropout: float = 0.0,
    hidden_sizes: list[int] | tuple[int, ...] = (256,),
    activation: Activation = "relu",
) -> nn.Module:
    """Fully connected network on flattened pixels: ``hidden_sizes`` layers, then the classifier."""
    height, width = image_hw(image_size, "mlp")
    if not hidden_sizes or any(size < 1 for size in hidden_sizes):
        raise SpecError(f"net_args.hidden_sizes: expected positive sizes, got {hidden_sizes}")
    layers: list[nn.Module] = [nn.Flatten()]  # [B, C*H*W]
    width_in = in_channels * height * width
    for size in hidden_sizes:
        layers += [nn.Linear(width_in, size), ACTIVATIONS[activation]()]
        width_in = size
    layers += [nn.Dropout(dropout), nn.Linear(width_in, num_classes)]  # [B, K]
    return mark_head(nn.Sequential(*layers), str(len(layers) - 1))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with max-pooling and a choice of activation.

    32x32 input: conv5 -> [6, 28, 28] -> pool -> [6, 14, 14] -> conv5 -> [16, 10, 10] -> pool ->
    [16, 5, 5]. Other sizes (>= 16 px) are pooled adaptively to 5x5 before the classifier.
    """

    def __init__(self, num_classes: int, in_channels: int, dropout: float, activation: Activation):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),
            act(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            act(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # [B, 400]
            nn.Linear(16 * 5 * 5, 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Dropout(dropout),
            nn.Linear(84, num_classes),  # [B, K]
        )

    def forward(self, images):
        return self.classifier(self.features(images))


@CLASSIFICATION_NETS.register("lenet5")
def lenet5(
    *,
    num_classes: int,
    in_channels: int,
    image_size: list[int] | tuple[int, int] | None,
    dropout: float = 0.0,
    activation: Activation = "relu",
) -> nn.Module:
    """LeNet-5: two 5x5 conv layers and three fully connected layers, for 32x32 images."""
    return mark_head(LeNet5(num_classes, in_channels, dropout, activation), "classifier.6")
