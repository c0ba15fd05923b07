"""Every registered net builds, runs forward and backward, and follows the builder convention."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from visionflow.errors import SpecError, UnknownNameError
from visionflow.tasks.nets import COMMON_ARGS, build_net, split_backbone_head
from visionflow.tasks.nets.families import CLASSIFICATION_NETS as NETS

# Small versions of the big nets, so the whole registry runs in seconds on a CPU. A net that is
# not listed is tested at 32x32 with its defaults.
TINY_NET_ARGS = {
    "alexnet": {"small_input": True},
    "vgg11": {"small_input": True},
    "vgg16": {"small_input": True},
    "googlenet": {"small_input": True},
    "resnet18": {"small_input": True},
    "vit_tiny": {"dim": 16, "depth": 1, "heads": 2},
}
IMAGE_SIZE = (32, 32)


def tiny_net(name: str, *, num_classes: int = 3, in_channels: int = 3) -> nn.Module:
    return build_net(
        name,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=IMAGE_SIZE,
        net_args=TINY_NET_ARGS.get(name),
    )


@pytest.mark.parametrize("name", NETS.names())
def test_net_forward_backward(name):
    torch.manual_seed(0)
    net = tiny_net(name, num_classes=3, in_channels=2)
    logits = net(torch.randn(2, 2, *IMAGE_SIZE))
    assert logits.shape == (2, 3)
    logits.square().sum().backward()
    backbone, head = split_backbone_head(net)
    assert isinstance(head, nn.Linear) and head.out_features == 3
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    if name != "linear":  # the linear classifier is all head
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone)
    assert len(backbone) + len(list(head.parameters())) == len(list(net.parameters()))


@pytest.mark.parametrize("name", NETS.names())
def test_builder_signature_convention(name):
    """``(*, num_classes, in_channels, image_size, dropout=0.0, **net_args)``, keyword-only."""
    params = list(inspect.signature(NETS.get(name).builder).parameters.values())
    assert tuple(p.name for p in params[: len(COMMON_ARGS)]) == COMMON_ARGS
    assert all(p.kind is p.KEYWORD_ONLY for p in params)
    assert params[3].default == 0.0
    net_args = params[len(COMMON_ARGS) :]
    assert all(p.default is not p.empty for p in net_args), "net_args need defaults"


def test_unknown_net_suggests_close_names():
    with pytest.raises(
        UnknownNameError, match=r"net: unknown classification net 'resnet81'.*resnet18"
    ):
        tiny_net("resnet81")


@pytest.mark.parametrize(
    ("net_args", "message"),
    [
        ({"hidden": [4]}, r"net_args.hidden: unknown key"),
        ({"hidden_sizes": "wide"}, r"net_args.hidden_sizes: expected"),
        ({"num_classes": 4}, r"net_args.num_classes: unknown key"),
    ],
)
def test_bad_net_args_name_the_key(net_args, message):
    with pytest.raises(SpecError, match=message) as error:
        build_net("mlp", num_classes=3, in_channels=1, image_size=(8, 8), net_args=net_args)
    assert "\n" not in error.value.message


def test_unknown_net_arg_lists_allowed_keys():
    with pytest.raises(SpecError) as error:
        build_net("vit_tiny", num_classes=3, in_channels=1, image_size=(8, 8), net_args={"dims": 8})
    assert "did you mean 'dim'" in error.value.message
    assert "patch_size" in error.value.hint and "heads" in error.value.hint


@pytest.mark.parametrize(
    ("name", "size", "hint"),
    [
        ("alexnet", (32, 32), "small_input"),
        ("lenet5", (12, 12), "larger images"),
    ],
)
def test_too_small_images_fail_before_training(name, size, hint):
    with pytest.raises(SpecError, match=r"image_size: net .* cannot take 3x") as error:
        build_net(name, num_classes=3, in_channels=3, image_size=size)
    assert hint in error.value.hint


@pytest.mark.parametrize("name", ["linear", "mlp", "vit_tiny"])
def test_nets_with_fixed_size_need_image_size(name):
    with pytest.raises(SpecError, match=r"image_size: .*needs a fixed image size"):
        build_net(name, num_classes=3, in_channels=1, image_size=None)


def test_vit_patch_size_must_divide_image():
    with pytest.raises(SpecError, match=r"net_args.patch_size: 5 must divide"):
        build_net(
            "vit_tiny",
            num_classes=3,
            in_channels=1,
            image_size=(32, 32),
            net_args={"patch_size": 5},
        )


def test_resnet_small_input_stem_keeps_resolution():
    default = build_net("resnet18", num_classes=3, in_channels=1, image_size=None)
    small = build_net(
        "resnet18", num_classes=3, in_channels=1, image_size=None, net_args={"small_input": True}
    )
    assert default.conv1.kernel_size == (7, 7) and default.conv1.stride == (2, 2)
    assert default.conv1.in_channels == 1 and isinstance(default.maxpool, nn.MaxPool2d)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)


def test_lenet5_has_the_classic_shape_at_32px():
    net = build_net("lenet5", num_classes=10, in_channels=1, image_size=(32, 32))
    assert net.features[:6](torch.zeros(1, 1, 32, 32)).shape == (1, 16, 5, 5)
    assert sum(p.numel() for p in net.parameters()) == 61_706  # as in LeCun et al. (1998)


def test_dropout_reaches_the_classifier():
    net = build_net("resnet18", num_classes=3, in_channels=3, image_size=None, dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in net.modules())
