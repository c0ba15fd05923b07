"""Argument sets: builders that share a backbone take its ``net_args`` from one dataclass."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest

from visionflow.errors import SpecError
from visionflow.spec import check_arguments
from visionflow.tasks.nets.argument_sets import flat_argument_sets
from visionflow.tasks.nets.pointnet import pointnet
from visionflow.tasks.nets.pointnet2 import pointnet2
from visionflow.tasks.nets.pointnet_seg import pointnet2_seg, pointnet_seg


@dataclass(frozen=True)
class Trunk:
    width: int = 4
    depth: int = 2

    def __post_init__(self) -> None:
        if self.width < 1:
            raise SpecError(f"net_args.width: must be >= 1, got {self.width}")


@flat_argument_sets
def tiny_net(*, num_classes: int, trunk: Trunk, dropout: float = 0.1) -> tuple:
    """A tiny net."""
    return num_classes, trunk, dropout


def test_the_set_fields_are_flat_keyword_arguments_in_its_place():
    parameters = inspect.signature(tiny_net).parameters.values()
    assert [(p.name, p.annotation, p.default) for p in parameters] == [
        ("num_classes", int, inspect.Parameter.empty),
        ("width", int, 4),
        ("depth", int, 2),
        ("dropout", float, 0.1),
    ]
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters)
    assert tiny_net.__name__ == "tiny_net" and tiny_net.__doc__ == "A tiny net."


def test_a_call_builds_the_set_and_checks_it():
    assert tiny_net(num_classes=3, depth=5) == (3, Trunk(width=4, depth=5), 0.1)
    with pytest.raises(SpecError, match="net_args.width: must be >= 1, got 0"):
        tiny_net(num_classes=3, width=0)
    with pytest.raises(TypeError, match="'widht'"):
        tiny_net(num_classes=3, widht=2)
    with pytest.raises(TypeError, match="'num_classes'"):
        tiny_net(width=2)


def test_the_spec_checker_sees_the_flat_keys():
    check_arguments(tiny_net, {"width": 2, "dropout": 0.0}, "net_args", skip=1)
    with pytest.raises(SpecError, match="net_args.widht: unknown key; did you mean 'width'"):
        check_arguments(tiny_net, {"widht": 2}, "net_args", skip=1)
    with pytest.raises(SpecError, match="net_args.depth: expected int"):
        check_arguments(tiny_net, {"depth": "deep"}, "net_args", skip=1)


@pytest.mark.parametrize(
    ("classifier", "segmentation"), [(pointnet, pointnet_seg), (pointnet2, pointnet2_seg)]
)
def test_segmentation_nets_take_their_classifiers_net_args(classifier, segmentation):
    """One source for a backbone's arguments: names, types and defaults (dropout aside)."""

    def backbone_arguments(builder):
        parameters = inspect.signature(builder).parameters.values()
        return [(p.name, p.annotation, p.default) for p in parameters if p.name != "dropout"]

    assert backbone_arguments(segmentation) == backbone_arguments(classifier)
    assert "width" in inspect.signature(segmentation).parameters


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"width": 0}, r"net_args.width: must be >= 1, got 0"),
        ({"feature_dim": 0}, r"net_args.feature_dim: must be >= 1, got 0"),
    ],
)
@pytest.mark.parametrize("builder", [pointnet, pointnet_seg])
def test_pointnet_errors_name_the_key(builder, args, message):
    with pytest.raises(SpecError, match=message):
        builder(num_classes=2, **args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"width": 0}, r"net_args.width: must be >= 1, got 0"),
        ({"samples": [8, 0]}, r"net_args.samples: must be each >= 1, got \[8, 0\]"),
        ({"neighbours": [0, 6]}, r"net_args.neighbours: must be each >= 1"),
        ({"radii": [0.5, -1.0]}, r"net_args.radii: must be each > 0"),
        ({"in_channels": 2}, r"^in_channels: must be >= 3 \(xyz first\), got 2"),
        ({"radii": [0.5]}, r"net_args: samples, radii and neighbours need one entry per level"),
    ],
)
@pytest.mark.parametrize("builder", [pointnet2, pointnet2_seg])
def test_pointnet2_errors_name_the_key(builder, args, message):
    small = {"samples": [8, 4], "radii": [0.5, 1.0], "neighbours": [6, 6], "width": 4}
    with pytest.raises(SpecError, match=message):
        builder(num_classes=2, **{**small, **args})
