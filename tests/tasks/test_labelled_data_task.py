"""LabelledDataTask and ClipClassifier declare the data-provided arguments once: the spec checker
sees them on every task, the hyperparameters hold their defaults, and a mismatch is refused."""

from __future__ import annotations

import pytest

from visionflow.arguments import parameters_of
from visionflow.errors import SpecError
from visionflow.tasks import (
    ImageClassificationTask,
    ImageToPointCloudTask,
    ObjectDetectionTask,
    PointCloudClassificationTask,
    SemanticSegmentationTask,
    TwoStreamTask,
    VideoClassificationTask,
)

DATA_ARGUMENTS = {"num_classes", "in_channels", "class_names"}
LABELLED = [
    ImageClassificationTask,
    ObjectDetectionTask,
    SemanticSegmentationTask,
    PointCloudClassificationTask,
    ImageToPointCloudTask,
]


@pytest.mark.parametrize("task_type", [*LABELLED, VideoClassificationTask, TwoStreamTask])
def test_the_spec_sees_the_data_arguments_of_every_task(task_type):
    assert DATA_ARGUMENTS <= {p.name for p in parameters_of(task_type)}


def test_forwarded_arguments_keep_their_defaults_in_the_hyperparameters():
    task = ImageClassificationTask(num_classes=3, net="linear", image_size=[8, 8])
    assert task.hparams["in_channels"] == 3 and task.hparams["class_names"] is None
    assert task.hparams["image_size"] == [8, 8] and task.class_names == ["0", "1", "2"]
    video = VideoClassificationTask(num_classes=3, net="single_frame", net_args={"width": 4})
    assert video.hparams["clip_length"] == 8 and video.hparams["label_smoothing"] == 0.0


def test_class_names_of_another_count_are_refused():
    with pytest.raises(SpecError, match="class_names: 2 names for num_classes=3"):
        PointCloudClassificationTask(num_classes=3, class_names=["a", "b"])
