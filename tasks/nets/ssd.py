"""SSD detectors (fixed input sizes and their own default boxes), registered in the detection family.

SSD300 (VGG16) and SSDlite320 (MobileNetV3-Large) take neither ``min_size``/``max_size`` nor
anchors; see :mod:`visionflow.tasks.nets.detectors` for the options they share.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.nets.detectors import KEY, DetectorOptions, classification_backbone
from visionflow.tasks.nets.families import DETECTION_NETS


def no_resize_or_anchors(options: DetectorOptions, name: str) -> None:
    for key in ("min_size", "max_size", "anchor_sizes", "aspect_ratios"):
        if getattr(options, key) is not None:
            raise SpecError(
                f"{KEY}{key}: {name} has a fixed input size and default boxes",
                hint="remove the key, or use an FPN detector",
            )


@DETECTION_NETS.register("ssd300_vgg16", class_head="head.classification_head", fixed_size=True)
def ssd300_vgg16(options: DetectorOptions) -> nn.Module:
    """SSD at 300x300, VGG16 backbone."""
    from torchvision.models import vgg16
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD, _vgg_extractor

    no_resize_or_anchors(options, "ssd300_vgg16")
    backbone = _vgg_extractor(
        classification_backbone(vgg16, options), False, options.trainable_layers(5, 4)
    )
    boxes = DefaultBoxGenerator(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300],
    )
    settings = {
        "image_mean": [0.48235, 0.45882, 0.40784],
        "image_std": [1.0 / 255.0] * 3,
        **options.model_args(SSD, resize=False),
    }
    return SSD(backbone, boxes, (300, 300), options.num_classes, **settings)


@DETECTION_NETS.register(
    "ssdlite320_mobilenet_v3_large", class_head="head.classification_head", fixed_size=True
)
def ssdlite320_mobilenet_v3_large(options: DetectorOptions) -> nn.Module:
    """SSDlite at 320x320, MobileNetV3-Large backbone (the lightest here)."""
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead, _mobilenet_extractor, _normal_init

    no_resize_or_anchors(options, "ssdlite320_mobilenet_v3_large")
    norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    backbone = classification_backbone(
        mobilenet_v3_large,
        options,
        norm_layer=norm_layer,
        reduced_tail=options.weights_backbone is None,
    )
    if options.weights_backbone is None:
        _normal_init(backbone)
    backbone = _mobilenet_extractor(backbone, options.trainable_layers(6, 6), norm_layer)
    boxes = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    channels = det_utils.retrieve_out_channels(backbone, (320, 320))
    head = SSDLiteHead(channels, boxes.num_anchors_per_location(), options.num_classes, norm_layer)
    settings = {
        "score_thresh": 0.001,
        "nms_thresh": 0.55,
        "detections_per_img": 300,
        "topk_candidates": 300,
        "image_mean": [0.5] * 3,
        "image_std": [0.5] * 3,
        **options.model_args(SSD, resize=False),
    }
    return SSD(backbone, boxes, (320, 320), options.num_classes, head=head, **settings)
