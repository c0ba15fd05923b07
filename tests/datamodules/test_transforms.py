"""Transform presets, the list form of a pipeline, and their errors."""

from __future__ import annotations

import json

import albumentations as A
import numpy as np
import pytest
import yaml

from visionflow.datamodules import transforms as presets
from visionflow.errors import SpecError, UnknownNameError
from visionflow.registry import TRANSFORMS

CIFAR_LIKE = presets.TransformContext(
    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), image_size=(32, 32), source_size=(32, 32)
)
CLASSIFICATION_PRESETS = [
    "normalize",
    "resize_normalize",
    "digits_train",
    "digits_eval",
    "mnist_train",
    "mnist_eval",
    "cifar_train",
    "cifar_eval",
    "imagenet_train",
    "imagenet_eval",
]


def names(pipeline: A.Compose) -> list[str]:
    return [type(t).__name__ for t in presets.flatten(pipeline)]


@pytest.mark.parametrize("preset", CLASSIFICATION_PRESETS)
def test_every_classification_preset_is_registered_and_normalizes(preset):
    assert TRANSFORMS.get(preset).tags["family"] == "classification"
    pipeline = presets.build_transform(preset, CIFAR_LIKE, "transforms.train")
    image = np.full((32, 32, 3), 255, dtype=np.uint8)
    out = pipeline(image=image)["image"]
    assert out.dtype == np.float32 and out.shape == (32, 32, 3)
    assert names(pipeline)[-1] == "Normalize"
    assert out.max() <= (1 - 0.5) / 0.25 + 1e-5  # white, normalized with mean 0.5, std 0.25


def test_cifar_train_is_pad4_crop_flip_normalize():
    assert names(presets.build_transform("cifar_train", CIFAR_LIKE, "t")) == [
        "PadIfNeeded",
        "RandomCrop",
        "HorizontalFlip",
        "Normalize",
    ]
    pad = presets.flatten(presets.build_transform("cifar_train", CIFAR_LIKE, "t"))[0]
    assert (pad.min_height, pad.min_width) == (40, 40)


def test_resize_only_when_the_size_changes():
    assert names(presets.build_transform("resize_normalize", CIFAR_LIKE, "t")) == ["Normalize"]
    bigger = presets.TransformContext(
        mean=(0.5,), std=(0.5,), image_size=(32, 32), source_size=(8, 8)
    )
    assert names(presets.build_transform("digits_eval", bigger, "t")) == ["Resize", "Normalize"]
    assert presets.output_shape(
        presets.build_transform("digits_train", bigger, "t"), (8, 8, 1), "t"
    ) == (32, 32, 1)


def test_imagenet_presets_produce_the_image_size_from_any_input():
    context = presets.TransformContext(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=(64, 64))
    for preset in ("imagenet_train", "imagenet_eval"):
        pipeline = presets.build_transform(preset, context, "t")
        for shape in ((300, 400, 3), (90, 70, 3)):
            assert presets.output_shape(pipeline, shape, "t") == (64, 64, 3)


def test_presets_that_need_a_size_say_so():
    sizeless = presets.TransformContext(mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(
        SpecError,
        match=r"transforms.train: transform preset 'imagenet_eval' "
        r"needs an image size",
    ):
        presets.build_transform("imagenet_eval", sizeless, "transforms.train")


def test_unknown_preset_suggests_a_close_name():
    with pytest.raises(
        UnknownNameError,
        match=r"transforms.train: unknown transform "
        r"'cifar_trian'; did you mean 'cifar_train'",
    ):
        presets.build_transform("cifar_trian", CIFAR_LIKE, "transforms.train")


def test_a_list_builds_albumentations_transforms_and_splices_presets():
    spec = [
        {"name": "RandomCrop", "height": 28, "width": 28},
        {"name": "HorizontalFlip", "p": 0.25},
        "normalize",
    ]
    pipeline = presets.build_transform(spec, CIFAR_LIKE, "transforms.train")
    assert names(pipeline) == ["RandomCrop", "HorizontalFlip", "Normalize"]
    assert presets.flatten(pipeline)[1].p == 0.25
    assert presets.output_shape(pipeline, (32, 32, 3), "t") == (28, 28, 3)


def test_list_arguments_become_tuples():
    spec = [{"name": "ColorJitter", "brightness": [0.9, 1.1], "p": 1.0}]
    jitter = presets.flatten(presets.build_transform(spec, CIFAR_LIKE, "t"))[0]
    assert tuple(jitter.brightness) == (0.9, 1.1)


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            [{"name": "HorizontalFlp"}],
            r"transforms.train\[0\]: unknown albumentations transform "
            r"'HorizontalFlp'; did you mean 'HorizontalFlip'",
        ),
        (
            [{"name": "HorizontalFlip"}, {"name": "RandomCrop", "heigth": 3, "width": 3}],
            r"transforms.train\[1\] \(RandomCrop\): unknown argument 'heigth'; did you mean 'height'",
        ),
        (
            [{"name": "RandomCrop", "height": -1, "width": 3}],
            r"transforms.train\[0\] \(RandomCrop\): invalid arguments: .*height",
        ),
        (
            [{"name": "RandomCrop", "height": 3}],
            r"transforms.train\[0\] \(RandomCrop\): invalid arguments: .*width",
        ),
        ([{"p": 0.5}], r"transforms.train\[0\]: expected a preset name or \{name: "),
        ([42], r"transforms.train\[0\]: expected a preset name"),
        ({"name": "HorizontalFlip"}, r"transforms.train: expected a preset name or a list"),
        (
            ["normalise"],
            r"transforms.train\[0\]: unknown transform 'normalise'; did you mean "
            r"'normalize'",
        ),
    ],
)
def test_bad_list_entries_name_the_entry(spec, message):
    with pytest.raises(SpecError, match=message):
        presets.build_transform(spec, CIFAR_LIKE, "transforms.train")


def test_resolve_transforms_fills_defaults_and_refuses_unknown_phases():
    defaults = {"train": "cifar_train", "eval": "cifar_eval"}
    assert presets.resolve_transforms(None, defaults) == defaults
    assert presets.resolve_transforms({"train": "normalize"}, defaults) == {
        "train": "normalize",
        "eval": "cifar_eval",
    }
    with pytest.raises(SpecError, match=r"transforms.trian: unknown key; did you mean 'train'"):
        presets.resolve_transforms({"trian": "normalize"}, defaults)
    with pytest.raises(
        SpecError,
        match=r"transforms.test: unknown key\n  hint: allowed keys: "
        r"train, eval",
    ):
        presets.resolve_transforms({"test": "normalize"}, defaults)
    with pytest.raises(SpecError, match=r"transforms: expected a mapping"):
        presets.resolve_transforms(["normalize"], defaults)


def test_output_shape_reports_a_failing_pipeline_as_a_spec_error():
    pipeline = presets.build_transform(
        [{"name": "CenterCrop", "height": 64, "width": 64}], CIFAR_LIKE, "t"
    )
    with pytest.raises(SpecError, match=r"transforms.eval: the pipeline fails on a 32x32 image"):
        presets.output_shape(pipeline, (32, 32, 3), "transforms.eval")


@pytest.mark.filterwarnings("ignore:Argument\\(s\\) 'padding':UserWarning")  # albumentations' own
def test_describe_is_plain_data_that_albumentations_reads_back():
    pipeline = presets.build_transform("cifar_train", CIFAR_LIKE, "t")
    described = presets.describe_transform(pipeline)
    assert yaml.safe_load(yaml.safe_dump(described)) == described  # no tuples, no numpy
    assert json.loads(json.dumps(described)) == described
    rebuilt = A.from_dict(described)
    assert names(rebuilt) == names(pipeline)
    assert presets.flatten(rebuilt)[-1].mean == pytest.approx(CIFAR_LIKE.mean)


def test_compose_kwargs_reach_every_compose():
    context = presets.TransformContext(
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        image_size=(32, 32),
        compose_kwargs={"bbox_params": A.BboxParams(format="pascal_voc", label_fields=["ids"])},
    )
    pipeline = presets.build_transform("cifar_train", context, "t")
    out = pipeline(
        image=np.zeros((32, 32, 3), np.uint8), bboxes=np.array([[1, 1, 30, 30]]), ids=np.array([7])
    )
    assert out["image"].shape == (32, 32, 3) and len(out["bboxes"]) <= 1
