"""Mask R-CNN and Keypoint R-CNN at tiny size: train and eval outputs, options, weights."""

from __future__ import annotations

import pytest
import torch

from tests.tasks.conftest import FAST_NET
from visionflow.errors import SpecError
from visionflow.tasks.nets.detectors import build_detector
from visionflow.tasks.nets.families import DETECTION_NETS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"min_size": 32, "max_size": 48, **FAST_NET}
LIGHT = ["maskrcnn_mobilenet_v3_large_fpn", "keypointrcnn_mobilenet_v3_large_fpn"]
SMALL = ["maskrcnn_resnet18_fpn", "keypointrcnn_resnet18_fpn"]
HEAVY = ["maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"]


def targets_for(predicts: str) -> list[dict[str, torch.Tensor]]:
    """One object in a 32x32 image and none in a 24x32 one, with masks or 3 keypoints."""
    mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    mask[0, 5:25, 4:20] = 1
    keypoints = torch.tensor([[[4.0, 5.0, 2.0], [19.0, 24.0, 2.0], [10.0, 10.0, 0.0]]])
    extra = (
        [{"masks": mask}, {"masks": torch.zeros(0, 24, 32, dtype=torch.uint8)}]
        if predicts == "masks"
        else [{"keypoints": keypoints}, {"keypoints": torch.zeros(0, 3, 3)}]
    )
    boxes = [torch.tensor([[4.0, 5.0, 20.0, 25.0]]), torch.zeros(0, 4)]
    labels = [torch.tensor([2]), torch.zeros(0, dtype=torch.int64)]
    return [{"boxes": b, "labels": lab, **e} for b, lab, e in zip(boxes, labels, extra)]


def run_both_modes(name: str) -> None:
    predicts = DETECTION_NETS.get(name).tags["predicts"]
    extra = {"num_keypoints": 3} if predicts == "keypoints" else {}
    model = build_detector(name, num_classes=3, **TINY, **extra)
    images = [torch.rand(3, 32, 32), torch.rand(3, 24, 32)]
    model.train()
    losses = model(images, targets_for(predicts))
    assert f"loss_{predicts[:-1]}" in losses and all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        outputs = model(images)
    for image, output in zip(images, outputs):
        count = len(output["boxes"])
        if predicts == "masks":
            assert output["masks"].shape == (count, 1, *image.shape[-2:])
        else:
            assert output["keypoints"].shape == (count, 3, 3)
            assert output["keypoints_scores"].shape == (count, 3)


@pytest.mark.parametrize("name", LIGHT + SMALL)
def test_light_nets_train_and_predict_their_masks_or_keypoints(name):
    torch.manual_seed(0)
    run_both_modes(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", HEAVY)
def test_torchvision_architectures_train_and_predict_their_masks_or_keypoints(name):
    torch.manual_seed(0)
    run_both_modes(name)


def test_the_r50_mask_rcnn_is_torchvisions_own_state_dict_layout():
    """Its keys are those of torchvision's maskrcnn_resnet50_fpn, so its .pth files load."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    ours = build_detector("maskrcnn_resnet50_fpn", num_classes=91).state_dict()
    theirs = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_fine_tuning_weights_reinitialize_the_class_and_keypoint_heads(tmp_path):
    name = "keypointrcnn_mobilenet_v3_large_fpn"
    source = build_detector(name, num_classes=5, num_keypoints=17, **TINY)
    path = tmp_path / "kp.pth"
    torch.save(source.state_dict(), path)
    model = build_detector(name, num_classes=3, num_keypoints=4, weights=str(path), **TINY)
    backbone = "backbone.fpn.layer_blocks.0.0.weight"
    assert torch.equal(model.state_dict()[backbone], source.state_dict()[backbone])
    assert model.roi_heads.keypoint_predictor.kps_score_lowres.out_channels == 4


def test_a_keypoint_net_needs_its_keypoint_count():
    with pytest.raises(SpecError, match="num_keypoints: a Keypoint R-CNN needs"):
        build_detector("keypointrcnn_mobilenet_v3_large_fpn", num_classes=3)


@pytest.mark.parametrize("name", SMALL)
def test_small_nets_train_every_layer_and_their_batch_norm_from_scratch(name):
    """No frozen layer: one step's gradient reaches the stem, BatchNorm included, and the heads."""
    torch.manual_seed(0)
    predicts = DETECTION_NETS.get(name).tags["predicts"]
    extra = {"num_keypoints": 3} if predicts == "keypoints" else {}
    model = build_detector(name, num_classes=3, **TINY, **extra)
    assert model.backbone.out_channels == 64
    assert isinstance(model.backbone.body.bn1, torch.nn.BatchNorm2d)
    model.train()
    losses = model([torch.rand(3, 32, 32), torch.rand(3, 24, 32)], targets_for(predicts))
    sum(losses.values()).backward()
    frozen = [n for n, p in model.named_parameters() if p.grad is None or not p.requires_grad]
    assert frozen == []
    assert model.roi_heads.box_head.fc7.out_features == 256


def test_small_nets_keep_their_budgets_unless_model_kwargs_say_otherwise():
    default = build_detector("maskrcnn_resnet18_fpn", num_classes=3)
    assert default.rpn._pre_nms_top_n["training"] == 300
    assert default.roi_heads.fg_bg_sampler.batch_size_per_image == 128
    model = build_detector(
        "maskrcnn_resnet18_fpn", num_classes=3, model_kwargs={"box_batch_size_per_image": 32}
    )
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 32


def test_pretrained_small_net_freezes_its_stem_by_default(tmp_path):
    from torchvision.models import resnet18
    from torchvision.ops import FrozenBatchNorm2d

    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    model = build_detector("maskrcnn_resnet18_fpn", num_classes=3, weights_backbone=str(path))
    body = model.backbone.body
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad


def test_visionflow_list_shows_the_small_nets(capsys):
    from visionflow.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SMALL)
