"""Every registered detector at tiny size, in train and eval mode; options, weights, errors."""

from __future__ import annotations

import pytest
import torch

from tests.tasks.conftest import FAST_NET
from visionflow.errors import CheckpointError, SpecError
from visionflow.tasks.nets.detectors import build_detector
from visionflow.tasks.nets.families import DETECTION_NETS as DETECTORS

EXPECTED = {
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
}
#: tested in tests/tasks/test_instance_nets.py (their targets carry masks or keypoints)
MASK_AND_KEYPOINT_NETS = {
    "maskrcnn_resnet50_fpn",
    "maskrcnn_mobilenet_v3_large_fpn",
    "keypointrcnn_resnet50_fpn",
    "keypointrcnn_mobilenet_v3_large_fpn",
    "maskrcnn_resnet18_fpn",
    "keypointrcnn_resnet18_fpn",
}
FEW_PROPOSALS = FAST_NET["model_kwargs"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_args(name: str) -> dict:
    """Small internal sizes (SSD models have fixed ones) and few proposals for the R-CNNs."""
    if DETECTORS.get(name).tags.get("fixed_size"):
        return {}
    args = {"min_size": 32, "max_size": 48}
    if name.startswith("fasterrcnn"):
        args["model_kwargs"] = FEW_PROPOSALS
    return args


def test_all_twelve_are_registered():
    assert set(DETECTORS.names()) == EXPECTED | MASK_AND_KEYPOINT_NETS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_in_train_and_eval_mode(name):
    torch.manual_seed(0)
    model = build_detector(name, num_classes=3, **tiny_args(name))
    images = [torch.rand(3, 32, 32), torch.rand(3, 24, 32)]  # sizes may differ
    targets = [
        {"boxes": torch.tensor([[4.0, 5.0, 20.0, 25.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    if name == "ssd300_vgg16":  # 300 px inside whatever the input: one image is enough (no BN)
        images, targets = images[:1], targets[:1]
    model.train()
    losses = model(images, targets)
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        output = model(images[:1])[0]
    count = len(output["scores"])
    assert output["boxes"].shape == (count, 4) and output["labels"].shape == (count,)
    assert ((output["labels"] >= 0) & (output["labels"] < 3)).all()
    if count:
        assert output["boxes"].min() >= 0 and output["boxes"].max() <= 32  # input pixels


def test_thresholds_and_sizes_reach_the_model():
    model = build_detector(
        "fasterrcnn_mobilenet_v3_large_fpn",
        num_classes=3,
        min_size=96,
        max_size=128,
        score_thresh=0.4,
        nms_thresh=0.3,
        detections_per_img=7,
        anchor_sizes=[[16, 32]] * 3,
        aspect_ratios=[1.0],
    )
    assert model.roi_heads.score_thresh == 0.4 and model.roi_heads.nms_thresh == 0.3
    assert model.roi_heads.detections_per_img == 7
    assert model.transform.min_size == (96,) and model.transform.max_size == 128
    assert model.rpn.anchor_generator.num_anchors_per_location() == [2, 2, 2]
    retina = build_detector("retinanet_resnet50_fpn", num_classes=3, nms_thresh=0.2)
    assert retina.nms_thresh == 0.2


def test_trainable_backbone_layers_freeze_the_early_stages():
    model = build_detector("fcos_resnet50_fpn", num_classes=3, trainable_backbone_layers=1)
    body = model.backbone.body
    assert all(p.requires_grad for p in body.layer4.parameters())
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in model.backbone.fpn.parameters())


@pytest.mark.parametrize(
    "args, key",
    [
        ({"anchor_sizes": [[16, 32]] * 2}, "anchor_sizes"),  # 3 levels expected
        ({"anchor_sizes": [[16, 32], [16], [8]]}, "anchor_sizes"),  # unequal counts
        ({"trainable_backbone_layers": 9}, "trainable_backbone_layers"),
        ({"score_thresh": 1.5}, "score_thresh"),
        ({"model_kwargs": {"no_such_option": 1}}, "model_kwargs"),
        ({"model_kwargs": {"box_score_thresh": 0.1}, "score_thresh": 0.2}, "model_kwargs"),
    ],
)
def test_bad_options_name_their_key(args, key):
    with pytest.raises(SpecError, match=rf"net_args\.{key}"):
        build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, **args)


def test_ssd_rejects_sizes_and_fcos_takes_one_anchor_per_level():
    with pytest.raises(SpecError, match="fixed input size"):
        build_detector("ssdlite320_mobilenet_v3_large", num_classes=3, min_size=64)
    with pytest.raises(SpecError, match="one size per level"):
        build_detector("fcos_resnet50_fpn", num_classes=3, anchor_sizes=[[8, 16]] * 5)


def test_weights_load_locally_with_new_class_layers(tmp_path):
    source = build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=5)
    path = tmp_path / "frcnn.pth"
    torch.save({"model": source.state_dict()}, path)  # torchvision references' layout
    model = build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, weights=str(path))
    own, theirs = model.state_dict(), source.state_dict()
    backbone = [k for k in own if k.startswith("backbone.")]
    assert backbone and all(torch.equal(own[k], theirs[k]) for k in backbone)
    reshaped = [k for k in own if own[k].shape != theirs[k].shape]
    assert reshaped and all(k.startswith("roi_heads.box_predictor") for k in reshaped)
    # pretrained: frozen batch norm and, by default, 3 trainable backbone stages (torchvision's)
    assert not any(p.requires_grad for p in model.backbone.body["0"].parameters())


def test_weights_of_another_architecture_or_missing_file_fail_clearly(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(
        build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=3).state_dict(), path
    )
    with pytest.raises(CheckpointError, match="shapes differ for backbone"):
        build_detector("fcos_resnet50_fpn", num_classes=3, weights=str(path))
    torch.save({"backbone.not_a_layer": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="does not fit the detector: .*not_a_layer"):
        build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, weights=str(path))
    with pytest.raises(CheckpointError, match="missing"):
        build_detector(
            "fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, weights=str(tmp_path / "absent.pth")
        )
