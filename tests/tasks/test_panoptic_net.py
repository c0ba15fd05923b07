"""Panoptic FPN: the R-CNN losses and the semantic logits at the image size."""

from __future__ import annotations

import pytest
import torch

from tasks.nets.panoptic import PanopticFPN
from visionflow.errors import SpecError
from visionflow.tasks.nets.detectors import build_detector


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return PanopticFPN(num_things=3, num_stuff=2, image_size=(64, 64))


def square_target(label: int) -> dict[str, torch.Tensor]:
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:30, 20:40] = 1
    return {
        "boxes": torch.tensor([[20.0, 10.0, 40.0, 30.0]]),
        "labels": torch.tensor([label]),
        "masks": masks,
    }


def test_training_returns_both_heads_losses_and_stuff_logits(net):
    net.train()
    losses, detections, logits = net(
        torch.randn(2, 3, 64, 64), [square_target(1), square_target(3)]
    )
    assert {"loss_objectness", "loss_classifier", "loss_box_reg", "loss_mask"} <= set(losses)
    assert detections == [] and logits.shape == (2, 3, 64, 64)
    (sum(losses.values()) + logits.mean()).backward()
    assert net.semantic_head.predictor.weight.grad is not None


def test_inference_gives_detections_with_masks_at_the_image_size(net):
    net.eval()
    with torch.no_grad():
        losses, detections, logits = net(torch.randn(1, 3, 64, 64))
    assert losses == {} and len(detections) == 1 and logits.shape == (1, 3, 64, 64)
    assert detections[0]["masks"].shape[1:] == (1, 64, 64)


def test_needs_things_and_stuff():
    with pytest.raises(SpecError, match="num_things / num_stuff"):
        PanopticFPN(num_things=0, num_stuff=2, image_size=(64, 64))


def test_the_instance_head_is_the_detector_familys_entry(net):
    """Built by ``build_detector``: the light ResNet-18 Mask R-CNN, its layers and sizes, with
    the transform's normalization off; the semantic head reads the same FPN's channels."""
    entry = build_detector("maskrcnn_resnet18_fpn", num_classes=4, min_size=64, max_size=64)
    ours = {k: v.shape for k, v in net.instance.state_dict().items()}
    assert ours == {k: v.shape for k, v in entry.state_dict().items()}
    assert net.instance.transform.image_mean == [0.0, 0.0, 0.0]
    assert net.semantic_head.blocks[0][0].in_channels == net.instance.backbone.out_channels


def test_a_backbone_name_or_another_mask_entry_picks_the_detector():
    by_backbone = PanopticFPN(3, 2, (64, 64), "resnet18")
    assert by_backbone.instance.backbone.out_channels == 64
    other = PanopticFPN(3, 2, (64, 64), "maskrcnn_mobilenet_v3_large_fpn", nms_thresh=0.6)
    assert other.instance.roi_heads.nms_thresh == 0.6


def test_a_detector_without_masks_is_refused_with_the_choices():
    with pytest.raises(SpecError, match="'fasterrcnn_resnet50_fpn' is neither a Mask R-CNN"):
        PanopticFPN(3, 2, (64, 64), "fasterrcnn_resnet50_fpn")
