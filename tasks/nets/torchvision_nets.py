"""AlexNet, VGG, GoogLeNet and ResNet from torchvision, adapted to any class and channel count.

Each is built by torchvision with ``weights=None`` and ``num_classes`` set (pretrained weights are
loaded afterwards by the task: ``visionflow.tasks.nets.transfer.load_pretrained``). Adaptations:

- ``in_channels != 3``: the first convolution is rebuilt for that many channels.
- ``small_input: true`` (for ~32 px images, CIFAR-style): the stem becomes a 3x3 stride-1 conv
  with no max-pool (AlexNet, GoogLeNet, ResNet); VGG, whose stem already keeps the resolution,
  instead pools its 512 features globally into one linear classifier, as the usual CIFAR VGG.
- ``dropout``: torchvision's classifier dropout (AlexNet, VGG, GoogLeNet); for ResNet, a dropout
  after global pooling.
- GoogLeNet is built without its auxiliary classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visionflow.tasks.nets.families import CLASSIFICATION_NETS
from visionflow.tasks.nets.transfer import mark_head


@dataclass(frozen=True)
class Layout:
    """Where a torchvision family keeps its first conv, its stem max-pool and its classifier."""

    stem_conv: str
    stem_pool: str | None
    head: str


RESNET = Layout(stem_conv="conv1", stem_pool="maxpool", head="fc")
GOOGLENET = Layout(stem_conv="conv1.conv", stem_pool="maxpool1", head="fc")
ALEXNET = Layout(stem_conv="features.0", stem_pool="features.2", head="classifier.6")
VGG = Layout(stem_conv="features.0", stem_pool=None, head="classifier.6")

LAYOUTS = {
    "alexnet": ALEXNET,
    "vgg11": VGG,
    "vgg16": VGG,
    "googlenet": GOOGLENET,
    "resnet18": RESNET,
    "resnet34": RESNET,
    "resnet50": RESNET,
}


def build_torchvision_net(
    name: str, *, num_classes: int, in_channels: int, dropout: float, small_input: bool
) -> nn.Module:
    """torchvision's ``name`` with the adaptations in the module docstring; head marked."""
    layout = LAYOUTS[name]
    if small_input and layout is VGG:
        model = GlobalPoolVGG(name, num_classes, dropout)
        _adapt_stem(model, layout, in_channels, small_input=False)
        return mark_head(model, GlobalPoolVGG.HEAD)
    model = _torchvision_model(name, num_classes, dropout)
    _adapt_stem(model, layout, in_channels, small_input)
    return mark_head(model, layout.head)


class GlobalPoolVGG(nn.Module):
    """VGG for small images: ``features [B, 512, h, w] -> pool [B, 512] -> linear [B, K]``.

    ``features`` is torchvision's (same ``features.*`` keys); the 4096-wide classifier, 120M
    parameters that a 32 px image does not need, is never built.
    """

    HEAD = "classifier.1"
    CONFIGS = {"vgg11": "A", "vgg16": "D"}

    def __init__(self, name: str, num_classes: int, dropout: float):
        from torchvision.models.vgg import cfgs, make_layers

        super().__init__()
        self.features = make_layers(cfgs[self.CONFIGS[name]])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(512, num_classes))
        for module in self.modules():  # torchvision's VGG initialization
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(images)).flatten(1))


def _torchvision_model(name: str, num_classes: int, dropout: float) -> nn.Module:
    from torchvision import models

    if LAYOUTS[name] is RESNET:
        model = models.get_model(name, weights=None, num_classes=num_classes)
        model.avgpool = nn.Sequential(model.avgpool, nn.Dropout(dropout))  # no state_dict change
        return model
    extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return models.get_model(name, weights=None, num_classes=num_classes, dropout=dropout, **extra)


def _adapt_stem(model: nn.Module, layout: Layout, in_channels: int, small_input: bool) -> None:
    conv = model.get_submodule(layout.stem_conv)
    if small_input and layout.stem_pool is not None:
        kernel, stride, padding = 3, 1, 1
        model.set_submodule(layout.stem_pool, nn.Identity())
    elif in_channels != conv.in_channels:
        kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
    else:
        return
    stem = nn.Conv2d(
        in_channels, conv.out_channels, kernel, stride, padding, bias=conv.bias is not None
    )
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    if stem.bias is not None:
        nn.init.zeros_(stem.bias)
    model.set_submodule(layout.stem_conv, stem)


def _register(name: str) -> None:
    def build(
        *,
        num_classes: int,
        in_channels: int,
        image_size: list[int] | tuple[int, int] | None,
        dropout: float = 0.0,
        small_input: bool = False,
    ) -> nn.Module:
        return build_torchvision_net(
            name,
            num_classes=num_classes,
            in_channels=in_channels,
            dropout=dropout,
            small_input=small_input,
        )

    build.__name__ = build.__qualname__ = name
    CLASSIFICATION_NETS.add(
        name, build, description=f"torchvision {name} (net_args: small_input for ~32 px)"
    )


for _name in LAYOUTS:
    _register(_name)
