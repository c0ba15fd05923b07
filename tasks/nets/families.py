"""The network families of ``visionflow.registry.NETS``, each with the contract of its output.

A family's nets are built by its task; ``visionflow list nets`` shows them grouped by family.
A new task family declares its family here (one line) and registers its nets through it.
"""

from collections.abc import Callable, Collection, Mapping
from typing import Any

from visionflow.errors import UnknownNameError
from visionflow.registry import NETS, Family
from visionflow.spec import check_arguments

CLASSIFICATION_NETS = NETS.family("classification", output="images [B, C, H, W] -> logits [B, K]")
DETECTION_NETS = NETS.family(
    "detection",
    output="images list of [C, H, W] in [0, 1] -> train: losses dict; "
    "eval: per image {boxes [N, 4] XYXY, labels [N], scores [N]} (+ masks [N, 1, H, W] or "
    "keypoints [N, K, 3] for the nets tagged predicts)",
)
RL_NETS = NETS.family(
    "rl", output="observations [B, *observation_shape] -> features [B, F] (module.out_features = F)"
)
VAE_NETS = NETS.family(
    "vae",
    output="encode(images [B, C, H, W] in [0, 1], labels [B] | None) -> (mean, log_var) "
    "[B, Z]; decode(z [B, Z], labels) -> likelihood parameters [B, P*C, H, W]",
)
GAN_NETS = NETS.family(
    "gan",
    output="generator(z [B, Z], labels [B] | None) -> images [B, C, H, W] in [0, 1]; "
    "discriminator(images, labels) -> scores [B]",
)
PIXELCNN_NETS = NETS.family(
    "pixelcnn",
    output="images [B, C, H, W] in [0, 1], labels [B] | None -> "
    "logits [B, 256, C, H, W] of each pixel given the pixels before it; "
    "prepare_row(images, labels, row) -> () -> logits [B, 256, C, W] of that row (sampling)",
)
VIDEO_NETS = NETS.family("video", output="clips [B, C, T, H, W] -> logits [B, K]")
SEGMENTATION_NETS = NETS.family(
    "segmentation",
    output="images [B, C, H, W] -> logits [B, K, H, W], or {'out': logits, "
    "'aux': logits} when the net has an auxiliary head",
)


def checked_builder(
    family: Family,
    name: str,
    net_args: Mapping[str, Any],
    common_args: int = 0,
    *,
    key: str = "net",
    provided: Collection[str] = (),
) -> Callable[..., Any]:
    """The builder of ``family``'s net ``name``, with ``net_args`` checked against its signature
    (after its ``common_args`` leading arguments; ``provided`` ones the caller fills in); errors
    name ``key`` (the task's spec key) or ``<key>_args.<name>``."""
    try:
        builder = family.get(name).builder
    except UnknownNameError as error:
        raise error.under(key) from None
    check_arguments(builder, net_args, f"{key}_args", provided=provided, skip=common_args)
    return builder


POINTCLOUD_NETS = NETS.family(
    "pointcloud", output="points [B, N, C] (+ lengths [B]) -> logits [B, K]"
)
POINTCLOUD_SEGMENTATION_NETS = NETS.family(
    "pointcloud_segmentation",
    output="points [B, N, C] (+ lengths [B]) -> logits [B, N, K]; a valid point's logits do not "
    "depend on the padding",
)
IMAGE_TO_POINTCLOUD_NETS = NETS.family(
    "image_to_pointcloud", output="images [B, C, H, W] -> points [B, P, 3]"
)
VOXEL_NETS = NETS.family("voxel", output="voxels [B, 1, R, R, R] -> logits [B, K]")
IMAGE_TO_VOXEL_NETS = NETS.family(
    "image_to_voxel", output="images [B, C, H, W] -> occupancy logits [B, R, R, R]"
)
IMAGE_TO_OCCUPANCY_NETS = NETS.family(
    "image_to_occupancy",
    output="encode(images [B, C, H, W]) -> code [B, Z]; decode(code, points [B, Q, 3]) -> "
    "occupancy logits [B, Q]; forward(images, points) = decode(encode(images), points)",
)
IMAGE_TO_MESH_NETS = NETS.family(
    "image_to_mesh",
    output="images [B, C, H, W] -> list (one per stage) of verts [B, V, 3]; module.faces [F, 3]",
)
