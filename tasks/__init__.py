"""Tasks: LightningModules registered in ``visionflow.registry.TASKS``, one module per family.

Each module is imported here explicitly (never discovered), so importing ``visionflow.tasks`` fills
the registry. The networks they use live in ``visionflow.tasks.nets``.
"""

from visionflow.tasks import (adversarial, classification, detection, gradcheck, knn, optim,
                              understanding)
from visionflow.tasks.classification import ImageClassificationTask
from visionflow.tasks.detection import ObjectDetectionTask
from visionflow.tasks.gradcheck import GradCheckResult, numerical_gradient_check
from visionflow.tasks.knn import KNearestNeighbors

__all__ = [
    "GradCheckResult",
    "ImageClassificationTask",
    "KNearestNeighbors",
    "ObjectDetectionTask",
    "adversarial",
    "classification",
    "detection",
    "gradcheck",
    "knn",
    "numerical_gradient_check",
    "optim",
    "understanding",
]
