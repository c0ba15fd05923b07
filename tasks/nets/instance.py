"""Mask R-CNN (instance masks) and Keypoint R-CNN (pose) in the detection family.

    model = build_detector("maskrcnn_mobilenet_v3_large_fpn", num_classes=4, min_size=128,
                           max_size=128)
    model = build_detector("keypointrcnn_resnet50_fpn", num_classes=2, num_keypoints=17)

The same options as every detector (:mod:`visionflow.tasks.nets.detectors`: local ``weights`` and
``weights_backbone`` files, anchors, thresholds, sizes, ``model_kwargs`` such as Mask R-CNN's
``box_batch_size_per_image``). Each entry is tagged ``predicts`` (``"masks"`` or
``"keypoints"``): what its targets need and its detections add beyond boxes. The ResNet50-FPN
models are torchvision's own architectures (their ``.pth`` files load as ``weights``); the
MobileNetV3-Large-FPN ones are built from the same torchvision components, light enough to train
on a CPU in minutes: the light Mask R-CNN has a mask head of two 128-channel convolutions instead
of four of 256, the light Keypoint R-CNN a keypoint head of four 128-channel convolutions instead
of eight of 512.

The ResNet-18 FPN ones (``maskrcnn_resnet18_fpn``, ``keypointrcnn_resnet18_fpn``) fit 64-128 px
images without enlarging them: their FPN starts at P2 (stride 4) with 64 channels, BatchNorm
trains (from scratch), the box head is torchvision's TwoMLPHead 256 wide instead of 1024, the
mask head four 64-channel convolutions, anchors span 12-192 px and the proposal budgets are
small (``SMALL_BUDGETS``). Seconds per training step, batch 8 with 3 objects an image, AdamW,
one thread on the shared 2-core machine (median of 5 steps), at load average 0.6-1.1: Mask R-CNN
MobileNetV3-FPN at 192 px (the 64 px shapes enlarged 3x, as the examples used to) 2.18 against
ResNet-18 FPN at 128 px 0.99; Keypoint R-CNN 2.16 against 1.19. At 64 px (load 2-3) the
ResNet-18 FPN ones take 0.60 (masks) and 0.82 (keypoints). From scratch on the 128 px shapes
examples (README) they reach test mask AP50 0.99 in 12 epochs and OKS keypoint AP50 0.77 in 8.

:func:`build_detector` returns the torchvision model itself, so another task (panoptic) builds
its instance head the same way.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.detectors import (
    DetectorOptions,
    anchor_generator,
    classification_backbone,
    frozen_bn_if_pretrained,
    mobilenet_v3_fpn,
    rcnn_on,
    resnet50_fpn,
    resnet50_fpn_anchors,
)
from visionflow.tasks.nets.families import DETECTION_NETS

MASK_HEADS = ("roi_heads.box_predictor", "roi_heads.mask_predictor.mask_fcn_logits")
KEYPOINT_HEADS = ("roi_heads.box_predictor", "roi_heads.keypoint_predictor")
LIGHT_KEYPOINT_LAYERS = (128, 128, 128, 128)
LIGHT_MASK_LAYERS = (128, 128)
FAST_RCNN_REPRESENTATION = 1024  # torchvision's box head output (TwoMLPHead)
SMALL_FPN_CHANNELS = 64
SMALL_REPRESENTATION = 256
SMALL_MASK_LAYERS = (64, 64, 64, 64)
SMALL_KEYPOINT_LAYERS = (128, 128, 128, 128)
SMALL_ANCHOR_SIZES = ((12,), (24,), (48,), (96,), (192,))  # P2 (stride 4) .. pool (stride 64)
#: Proposal and sampling budgets of the small entries (torchvision: 2000/2000, 1000/1000, 512),
#: enough for the few objects of a 64-128 px image; ``model_kwargs`` override them.
SMALL_BUDGETS = {
    "rpn_pre_nms_top_n_train": 300,
    "rpn_post_nms_top_n_train": 150,
    "rpn_pre_nms_top_n_test": 150,
    "rpn_post_nms_top_n_test": 100,
    "box_batch_size_per_image": 128,
}


def keypoint_count(options: DetectorOptions) -> int:
    if options.num_keypoints is None:
        raise SpecError(
            "num_keypoints: a Keypoint R-CNN needs the number of keypoints per object",
            hint="the keypoint task sets it from the data's keypoint names",
        )
    return options.num_keypoints


def mask_heads(channels: int, layers: tuple[int, ...], num_classes: int) -> dict[str, nn.Module]:
    """torchvision's mask head with ``layers`` (widths) convolutions and its predictor."""
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

    width = layers[-1]
    return {
        "mask_head": MaskRCNNHeads(channels, layers, dilation=1),
        "mask_predictor": MaskRCNNPredictor(width, width, num_classes),
    }


def keypoint_heads(
    channels: int, layers: tuple[int, ...], options: DetectorOptions
) -> dict[str, nn.Module]:
    """torchvision's keypoint head with ``layers`` (widths) convolutions and its predictor."""
    from torchvision.models.detection.keypoint_rcnn import (
        KeypointRCNNHeads,
        KeypointRCNNPredictor,
    )

    return {
        "keypoint_head": KeypointRCNNHeads(channels, layers),
        "keypoint_predictor": KeypointRCNNPredictor(layers[-1], keypoint_count(options)),
    }


@DETECTION_NETS.register("maskrcnn_resnet50_fpn", class_head=MASK_HEADS, predicts="masks")
def maskrcnn_resnet50_fpn(options: DetectorOptions) -> nn.Module:
    """Mask R-CNN, ResNet50-FPN backbone (torchvision's architecture; 5 anchor levels)."""
    from torchvision.models.detection import MaskRCNN

    return MaskRCNN(
        resnet50_fpn(options, p6p7=False),
        options.num_classes,
        rpn_anchor_generator=resnet50_fpn_anchors(options),
        **options.model_args(MaskRCNN, "box_"),
    )


@DETECTION_NETS.register("maskrcnn_mobilenet_v3_large_fpn", class_head=MASK_HEADS, predicts="masks")
def maskrcnn_mobilenet_v3_large_fpn(options: DetectorOptions) -> nn.Module:
    """Mask R-CNN, MobileNetV3-Large-FPN backbone and a light mask head (CPU; 3 anchor levels)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    def heads(channels: int) -> dict[str, nn.Module]:
        masks = mask_heads(channels, LIGHT_MASK_LAYERS, options.num_classes)
        box_predictor = FastRCNNPredictor(FAST_RCNN_REPRESENTATION, options.num_classes)
        return {**masks, "box_predictor": box_predictor}

    return rcnn_on(
        MaskRCNN, mobilenet_v3_fpn(options), None, heads, **options.model_args(MaskRCNN, "box_")
    )


@DETECTION_NETS.register(
    "keypointrcnn_resnet50_fpn", class_head=KEYPOINT_HEADS, predicts="keypoints"
)
def keypointrcnn_resnet50_fpn(options: DetectorOptions) -> nn.Module:
    """Keypoint R-CNN, ResNet50-FPN backbone (torchvision's architecture; 5 anchor levels)."""
    from torchvision.models.detection import KeypointRCNN

    return KeypointRCNN(
        resnet50_fpn(options, p6p7=False),
        options.num_classes,
        num_keypoints=keypoint_count(options),
        rpn_anchor_generator=resnet50_fpn_anchors(options),
        **options.model_args(KeypointRCNN, "box_"),
    )


@DETECTION_NETS.register(
    "keypointrcnn_mobilenet_v3_large_fpn", class_head=KEYPOINT_HEADS, predicts="keypoints"
)
def keypointrcnn_mobilenet_v3_large_fpn(options: DetectorOptions) -> nn.Module:
    """Keypoint R-CNN, MobileNetV3-Large-FPN backbone and a light keypoint head (CPU)."""
    from torchvision.models.detection import KeypointRCNN

    return rcnn_on(
        KeypointRCNN,
        mobilenet_v3_fpn(options),
        options.num_classes,
        lambda channels: keypoint_heads(channels, LIGHT_KEYPOINT_LAYERS, options),
        **options.model_args(KeypointRCNN, "box_"),
    )


# ------------------------------------------------------------------ ResNet-18 FPN (small images)


def resnet18_fpn(options: DetectorOptions) -> tuple[nn.Module, Any]:
    """ResNet-18 FPN for small images: levels P2-P5 (strides 4-32) + pool (64) of
    ``SMALL_FPN_CHANNELS``, ordinary BatchNorm that trains (frozen only with pretrained weights,
    where ``trainable_backbone_layers`` defaults to 3), and its anchor generator (5 levels)."""
    from torchvision.models import resnet18
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    resnet = classification_backbone(resnet18, options, norm_layer=frozen_bn_if_pretrained(options))
    count = options.trainable_layers(5, 3)
    trained = ("layer4", "layer3", "layer2", "layer1", "conv1")[:count] + ("bn1",) * (count == 5)
    for name, parameter in resnet.named_parameters():
        parameter.requires_grad_(name.startswith(trained))
    backbone = BackboneWithFPN(
        resnet,
        {f"layer{k}": str(k - 1) for k in range(1, 5)},
        [64, 128, 256, 512],
        SMALL_FPN_CHANNELS,
    )
    default = AnchorGenerator(SMALL_ANCHOR_SIZES, ((0.5, 1.0, 2.0),) * len(SMALL_ANCHOR_SIZES))
    return backbone, anchor_generator(options, len(SMALL_ANCHOR_SIZES), default)


def small_box_head(options: DetectorOptions, channels: int) -> dict[str, nn.Module]:
    """torchvision's box head (TwoMLPHead on 7x7 RoIs) and predictor, ``SMALL_REPRESENTATION``
    wide instead of 1024."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    return {
        "box_head": TwoMLPHead(channels * 7 * 7, SMALL_REPRESENTATION),
        "box_predictor": FastRCNNPredictor(SMALL_REPRESENTATION, options.num_classes),
    }


def small_model_args(options: DetectorOptions, model_class: type) -> dict[str, Any]:
    """``SMALL_BUDGETS`` under the options' own settings (``model_kwargs`` win)."""
    return {**SMALL_BUDGETS, **options.model_args(model_class, "box_")}


@DETECTION_NETS.register("maskrcnn_resnet18_fpn", class_head=MASK_HEADS, predicts="masks")
def maskrcnn_resnet18_fpn(options: DetectorOptions) -> nn.Module:
    """Mask R-CNN for 64-128 px images: ResNet-18 FPN from P2, 64 channels, a 256-wide box head,
    a mask head of four 64-channel convolutions, anchors of 12-192 px (CPU)."""
    from torchvision.models.detection import MaskRCNN

    def heads(channels: int) -> dict[str, nn.Module]:
        masks = mask_heads(channels, SMALL_MASK_LAYERS, options.num_classes)
        return {**masks, **small_box_head(options, channels)}

    return rcnn_on(
        MaskRCNN, resnet18_fpn(options), None, heads, **small_model_args(options, MaskRCNN)
    )


@DETECTION_NETS.register(
    "keypointrcnn_resnet18_fpn", class_head=KEYPOINT_HEADS, predicts="keypoints"
)
def keypointrcnn_resnet18_fpn(options: DetectorOptions) -> nn.Module:
    """Keypoint R-CNN for 64-128 px images: the backbone, box head and anchors of
    ``maskrcnn_resnet18_fpn`` and a keypoint head of four 128-channel convolutions (CPU)."""
    from torchvision.models.detection import KeypointRCNN

    def heads(channels: int) -> dict[str, nn.Module]:
        keypoints = keypoint_heads(channels, SMALL_KEYPOINT_LAYERS, options)
        return {**keypoints, **small_box_head(options, channels)}

    return rcnn_on(
        KeypointRCNN, resnet18_fpn(options), None, heads, **small_model_args(options, KeypointRCNN)
    )
