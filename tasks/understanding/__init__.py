"""Understanding trained classifiers: attribution maps, feature visualization, image synthesis.

The algorithms behind the ``understand`` stage (:mod:`visionflow.pipelines.understanding`),
callable on any ``nn.Module`` that maps images ``[B, C, H, W]`` to logits ``[B, K]``.
"""

from visionflow.tasks.understanding.attribution import (
    class_activation_map,
    grad_cam,
    guided_backprop,
    occlusion,
    pixel_map,
    saliency,
    smoothgrad,
)
from visionflow.tasks.understanding.features import (
    embed_2d,
    first_layer_filters,
    head_inputs,
    nearest_neighbours,
    top_activating_patches,
)
from visionflow.tasks.understanding.synthesis import (
    class_visualization,
    deepdream,
    feature_inversion,
    gram_matrix,
    load_vgg,
    style_transfer,
)

__all__ = [
    "class_activation_map",
    "class_visualization",
    "deepdream",
    "embed_2d",
    "feature_inversion",
    "first_layer_filters",
    "grad_cam",
    "gram_matrix",
    "guided_backprop",
    "head_inputs",
    "load_vgg",
    "nearest_neighbours",
    "occlusion",
    "pixel_map",
    "saliency",
    "smoothgrad",
    "style_transfer",
    "top_activating_patches",
]
