"""Torchvision detectors by name, built offline and configured from a spec.

    model = build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=4, min_size=128,
                           max_size=128, anchor_sizes=[[16, 32, 64, 128]] * 3)

Every detector takes images as a list of float32 ``[C, H, W]`` in ``[0, 1]`` (it normalizes and
resizes internally) and, in train mode, targets ``{"boxes" [N, 4] XYXY, "labels" [N]}``; it
returns a dict of losses in train mode and, in eval mode, one ``{"boxes", "labels", "scores"}``
per image in input pixel coordinates. ``num_classes`` counts the background: labels are
``1..num_classes-1``.

Nothing downloads. ``weights`` is a local file with the whole detector's state dict (a torchvision
``.pth``, or a dict holding it under ``"model"``), loaded with ``weights_only=True``; layers whose
shape depends on the number of classes are re-initialized when it differs (fine-tuning), any
other mismatch is a ``CheckpointError``. ``weights_backbone`` is a local file with the
classification backbone's state dict (e.g. torchvision's ``resnet50-0676ba61.pth``). As in
torchvision, a pretrained model gets frozen batch norm and ``trainable_backbone_layers`` (0 freezes
the whole backbone) defaults to 3 (SSD300: 4, SSDlite: 6); without weights every layer trains.

``anchor_sizes`` gives one list of sizes per feature level (Faster R-CNN ResNet50-FPN, RetinaNet,
FCOS: 5 levels; Faster R-CNN MobileNetV3-FPN: 3) and ``aspect_ratios`` the ratios of every level;
FCOS takes one size per level and ratio 1. SSD models have fixed input sizes (300, 320) and their
own default boxes, so they take neither ``min_size``/``max_size`` nor anchors
(:mod:`~visionflow.tasks.nets.ssd`).

Mask R-CNN and Keypoint R-CNN (:mod:`~visionflow.tasks.nets.instance`, tagged ``predicts``) also
take ``masks`` [N, H, W] uint8, or ``keypoints`` [N, K, 3] (x, y, visibility) and the builder's
``num_keypoints`` K, in their targets, and add ``masks`` [N, 1, H, W] probabilities, or
``keypoints`` [N, K, 3] and ``keypoints_scores`` [N, K], to each image's detections.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionflow.errors import CheckpointError, SpecError
from visionflow.registry import did_you_mean
from visionflow.tasks.nets.families import DETECTION_NETS

KEY = "net_args."
#: What the builders set themselves, so ``model_kwargs`` may not.
MODEL_ARGS_SET = (
    "self",
    "backbone",
    "num_classes",
    "kwargs",
    "anchor_generator",
    "rpn_anchor_generator",
    "head",
    "size",
    "num_keypoints",
    "keypoint_head",
    "keypoint_predictor",
)


@dataclass(frozen=True)
class DetectorOptions:
    """The validated arguments of :func:`build_detector` (see the module docstring)."""

    num_classes: int
    weights: str | None = None
    weights_backbone: str | None = None
    trainable_backbone_layers: int | None = None
    min_size: int | None = None
    max_size: int | None = None
    anchor_sizes: list[list[int]] | None = None
    aspect_ratios: list[float] | None = None
    score_thresh: float | None = None
    nms_thresh: float | None = None
    detections_per_img: int | None = None
    model_kwargs: dict[str, Any] | None = None
    num_keypoints: int | None = None

    @property
    def pretrained(self) -> bool:
        return self.weights is not None or self.weights_backbone is not None

    def trainable_layers(self, maximum: int, pretrained_default: int) -> int:
        value = self.trainable_backbone_layers
        if value is None:
            return pretrained_default if self.pretrained else maximum
        if not 0 <= value <= maximum:
            raise SpecError(
                f"{KEY}trainable_backbone_layers: must be in [0, {maximum}] for this "
                f"backbone, got {value}"
            )
        return value

    def model_args(
        self, model_class: type, prefix: str = "", resize: bool = True
    ) -> dict[str, Any]:
        """Keyword arguments of ``model_class``: the settings given, under its names
        (``box_score_thresh`` for R-CNN), plus ``model_kwargs`` (checked against its signature:
        torchvision passes unknown ones on to a transform that ignores them)."""
        values = {
            "score_thresh": self.score_thresh,
            "nms_thresh": self.nms_thresh,
            "detections_per_img": self.detections_per_img,
        }
        named = {prefix + k: v for k, v in values.items() if v is not None}
        if resize:
            named.update(
                {
                    k: v
                    for k, v in (("min_size", self.min_size), ("max_size", self.max_size))
                    if v is not None
                }
            )
        extra = dict(self.model_kwargs or {})
        parameters = inspect.signature(model_class).parameters
        allowed = [n for n in parameters if n not in MODEL_ARGS_SET]
        for key, value in extra.items():
            if key not in allowed:
                raise SpecError(
                    f"{KEY}model_kwargs.{key}: not an argument of "
                    f"{model_class.__name__}{did_you_mean(key, allowed)}"
                )
            check_like_default(value, parameters[key].default, f"{KEY}model_kwargs.{key}")
        twice = sorted(set(named) & set(extra))
        if twice:
            raise SpecError(
                f"{KEY}model_kwargs.{twice[0]}: also set by a named option",
                hint="set it in one place",
            )
        return {**named, **extra}


def check_like_default(value: Any, default: Any, key: str) -> None:
    """Refuse ``value`` for a torchvision argument whose numeric or boolean ``default`` shows the
    type it takes (torchvision annotates few of them)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        return
    if not ok:
        raise SpecError(
            f"{key}: expected {type(default).__name__} like its default {default!r}, got {value!r}"
        )


def build_detector(
    name: str,
    *,
    num_classes: int,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    anchor_sizes: list[list[int]] | None = None,
    aspect_ratios: list[float] | None = None,
    score_thresh: float | None = None,
    nms_thresh: float | None = None,
    detections_per_img: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    num_keypoints: int | None = None,
) -> nn.Module:
    """The detector ``name`` with ``num_classes`` outputs (background included), see above.
    ``model_kwargs`` go to the torchvision model class as they are (e.g. Faster R-CNN's
    ``box_batch_size_per_image``, ``rpn_post_nms_top_n_train``)."""
    options = DetectorOptions(
        num_classes,
        weights,
        weights_backbone,
        trainable_backbone_layers,
        min_size,
        max_size,
        anchor_sizes,
        aspect_ratios,
        score_thresh,
        nms_thresh,
        detections_per_img,
        model_kwargs,
        num_keypoints,
    )
    check_options(options)
    model = DETECTION_NETS.get(name).builder(options)
    if weights is not None:
        load_detector_weights(model, Path(weights), DETECTION_NETS.get(name).tags["class_head"])
    return model


def check_options(options: DetectorOptions) -> None:
    if options.num_keypoints is not None and options.num_keypoints < 1:
        raise SpecError(f"num_keypoints: must be >= 1, got {options.num_keypoints}")
    if options.num_classes < 2:
        raise SpecError(
            f"num_classes: a detector needs at least one class besides the "
            f"background, got {options.num_classes - 1}"
        )
    for key in ("min_size", "max_size", "detections_per_img"):
        value = getattr(options, key)
        if value is not None and value < 1:
            raise SpecError(f"{KEY}{key}: must be >= 1, got {value}")
    for key in ("score_thresh", "nms_thresh"):
        value = getattr(options, key)
        if value is not None and not 0 <= value <= 1:
            raise SpecError(f"{KEY}{key}: must be in [0, 1], got {value}")


# ------------------------------------------------------------------------------------ weights


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file (``weights_only=True``); ``{"model": sd}`` is opened."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: weights file is missing",
            hint="weights are local files; nothing is downloaded",
        ) from None
    except Exception as error:  # pickle, zip and torch errors all mean an unreadable file
        raise CheckpointError(f"{path}: cannot read weights ({error})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_detector_weights(model: nn.Module, path: Path, class_head: str) -> None:
    """Load ``path`` into ``model``; class-dependent layers under ``class_head`` whose shape
    differs stay freshly initialized. Other mismatches raise a CheckpointError."""
    state = read_state_dict(path)
    own = model.state_dict()
    reshaped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in reshaped if not k.startswith(class_head)]
    if unexpected:
        raise CheckpointError(f"{path}: shapes differ for {', '.join(unexpected[:5])}")
    state = {k: v for k, v in state.items() if k not in reshaped}
    result = model.load_state_dict(state, strict=False)
    problems = [
        k
        for k in (*result.unexpected_keys, *result.missing_keys)
        if not k.endswith("num_batches_tracked") and k not in reshaped
    ]
    if problems:
        raise CheckpointError(
            f"{path}: does not fit the detector: missing or unexpected keys "
            f"{', '.join(problems[:5])}" + (" ..." if len(problems) > 5 else ""),
            hint="weights must come from the same detector architecture",
        )


def classification_backbone(
    factory: Callable[..., nn.Module], options: DetectorOptions, **kwargs: Any
) -> nn.Module:
    """A torchvision classification network with ``weights_backbone`` loaded (no download)."""
    model = factory(weights=None, **kwargs)
    if options.weights_backbone is not None:
        state = read_state_dict(Path(options.weights_backbone))
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(
                f"{options.weights_backbone}: does not fit the "
                f"{type(model).__name__} backbone: "
                f"{str(error).splitlines()[1].strip()}"
            ) from None
    return model


# ----------------------------------------------------------------------------------- anchors


def anchor_generator(options: DetectorOptions, levels: int, default: Any, one_per_level=False):
    """An ``AnchorGenerator`` from ``anchor_sizes``/``aspect_ratios``, or ``default`` without them."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    if options.anchor_sizes is None and options.aspect_ratios is None:
        return default
    sizes = options.anchor_sizes or [list(s) for s in default.sizes]
    ratios = options.aspect_ratios or list(default.aspect_ratios[0])
    if len(sizes) != levels or len({len(s) for s in sizes}) != 1 or not all(sizes):
        raise SpecError(
            f"{KEY}anchor_sizes: expected {levels} lists (one per feature level) of "
            f"equal length, got {sizes}"
        )
    if one_per_level and (len(sizes[0]) != 1 or list(ratios) != [1.0]):
        raise SpecError(f"{KEY}anchor_sizes: FCOS takes one size per level and aspect ratio 1.0")
    if any(s <= 0 for level in sizes for s in level) or any(r <= 0 for r in ratios):
        raise SpecError(f"{KEY}anchor_sizes: sizes and aspect ratios must be positive")
    return AnchorGenerator(tuple(tuple(s) for s in sizes), (tuple(ratios),) * levels)


# ---------------------------------------------------------------------------------- builders


def frozen_bn_if_pretrained(options: DetectorOptions) -> type[nn.Module]:
    from torchvision.ops import FrozenBatchNorm2d

    return FrozenBatchNorm2d if options.pretrained else nn.BatchNorm2d


def resnet50_fpn(options: DetectorOptions, p6p7: bool) -> nn.Module:
    """ResNet50-FPN: P2-P5 + pool (Faster R-CNN) or P3-P7 (RetinaNet, FCOS)."""
    from torchvision.models import resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    backbone = classification_backbone(
        resnet50, options, norm_layer=frozen_bn_if_pretrained(options)
    )
    extra = {"returned_layers": [2, 3, 4], "extra_blocks": LastLevelP6P7(256, 256)} if p6p7 else {}
    return _resnet_fpn_extractor(backbone, options.trainable_layers(5, 3), **extra)


@DETECTION_NETS.register("fasterrcnn_resnet50_fpn", class_head="roi_heads.box_predictor")
def fasterrcnn_resnet50_fpn(options: DetectorOptions) -> nn.Module:
    """Faster R-CNN, ResNet50-FPN backbone (two-stage; 5 anchor levels)."""
    from torchvision.models.detection import FasterRCNN

    return FasterRCNN(
        resnet50_fpn(options, p6p7=False),
        options.num_classes,
        rpn_anchor_generator=resnet50_fpn_anchors(options),
        **options.model_args(FasterRCNN, "box_"),
    )


def mobilenet_v3_fpn(options: DetectorOptions) -> tuple[nn.Module, Any]:
    """MobileNetV3-Large-FPN (2 levels + pool) and its R-CNN anchor generator (3 levels)."""
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor

    backbone = classification_backbone(
        mobilenet_v3_large, options, norm_layer=frozen_bn_if_pretrained(options)
    )
    backbone = _mobilenet_extractor(backbone, True, options.trainable_layers(6, 3))
    default = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return backbone, anchor_generator(options, 3, default)


def rcnn_on(
    model_class: type[nn.Module],
    backbone_and_anchors: tuple[nn.Module, Any],
    num_classes: int | None,
    heads: Callable[[int], dict[str, nn.Module]] = lambda channels: {},
    **model_args: Any,
) -> nn.Module:
    """torchvision's ``model_class`` (Faster, Mask or Keypoint R-CNN) on a backbone and its RPN
    anchor generator, with the head modules ``heads(backbone.out_channels)`` (built after the
    backbone, in their order) and ``model_args``; ``num_classes`` None where the heads'
    predictors hold the classes."""
    backbone, anchors = backbone_and_anchors
    return model_class(
        backbone,
        num_classes,
        rpn_anchor_generator=anchors,
        **heads(backbone.out_channels),
        **model_args,
    )


def resnet50_fpn_anchors(options: DetectorOptions) -> Any:
    """The R-CNN anchor generator of the ResNet50-FPN backbone (5 levels)."""
    from torchvision.models.detection.faster_rcnn import _default_anchorgen

    return anchor_generator(options, 5, _default_anchorgen())


@DETECTION_NETS.register("fasterrcnn_mobilenet_v3_large_fpn", class_head="roi_heads.box_predictor")
def fasterrcnn_mobilenet_v3_large_fpn(options: DetectorOptions) -> nn.Module:
    """Faster R-CNN, MobileNetV3-Large-FPN backbone (light two-stage; 3 anchor levels)."""
    from torchvision.models.detection import FasterRCNN

    return rcnn_on(
        FasterRCNN,
        mobilenet_v3_fpn(options),
        options.num_classes,
        **options.model_args(FasterRCNN, "box_"),
    )


@DETECTION_NETS.register("retinanet_resnet50_fpn", class_head="head.classification_head.cls_logits")
def retinanet_resnet50_fpn(options: DetectorOptions) -> nn.Module:
    """RetinaNet (one-stage, focal loss), ResNet50-FPN P3-P7."""
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.retinanet import _default_anchorgen

    anchors = anchor_generator(options, 5, _default_anchorgen())
    return RetinaNet(
        resnet50_fpn(options, p6p7=True),
        options.num_classes,
        anchor_generator=anchors,
        **options.model_args(RetinaNet),
    )


@DETECTION_NETS.register("fcos_resnet50_fpn", class_head="head.classification_head.cls_logits")
def fcos_resnet50_fpn(options: DetectorOptions) -> nn.Module:
    """FCOS (one-stage, anchor-free), ResNet50-FPN P3-P7."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    default = AnchorGenerator(((8,), (16,), (32,), (64,), (128,)), ((1.0,),) * 5)
    anchors = anchor_generator(options, 5, default, one_per_level=True)
    return FCOS(
        resnet50_fpn(options, p6p7=True),
        options.num_classes,
        anchor_generator=anchors,
        **options.model_args(FCOS),
    )
