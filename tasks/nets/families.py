"""The network families of ``visionflow.registry.NETS``, each with the contract of its output.

A family's nets are built by its task; ``visionflow list nets`` shows them grouped by family.
A new task family declares its family here (one line) and registers its nets through it.
"""

from visionflow.registry import NETS

CLASSIFICATION_NETS = NETS.family(
    "classification", output="images [B, C, H, W] -> logits [B, K]")
DETECTION_NETS = NETS.family(
    "detection", output="images list of [C, H, W] in [0, 1] -> train: losses dict; "
                        "eval: per image {boxes [N, 4] XYXY, labels [N], scores [N]}")
VIDEO_NETS = NETS.family("video", output="clips [B, C, T, H, W] -> logits [B, K]")
